// Command ceiling is the benchmark's yardstick: a Fiber app that answers
// every GET / with 13 bytes of plain text and does nothing else. What it
// serves on a machine is the most any Fiber page can serve there, so the
// site's pages are reported as a fraction of it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string) error {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/", func(c *fiber.Ctx) error {
		return c.SendString("Hello, World!") // 13 bytes
	})
	go func() {
		<-ctx.Done()
		_ = app.Shutdown()
	}()
	return app.Listen(addr)
}
