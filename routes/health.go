package routes

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// livez answers while the process runs; it checks nothing else, so a slow
// database never gets a healthy replica restarted.
func livez(c *fiber.Ctx) error {
	return c.SendString("ok")
}

// readyz says whether this replica should get traffic: not while it drains,
// and not when MySQL does not answer within a second. Memcached is left
// out on purpose: its outage would take every replica out at once, while
// the site can still serve pages without it.
func readyz(catalog Catalog, draining *atomic.Bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if draining.Load() {
			return c.Status(fiber.StatusServiceUnavailable).SendString("draining")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := catalog.Ping(ctx); err != nil {
			return c.Status(fiber.StatusServiceUnavailable).SendString("database unavailable")
		}
		return c.SendString("ok")
	}
}
