package app

import (
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/addrlimit"
)

// TestAdmitNewSessionsOncePerRequest: a first visit asks twice (CSRF
// token, then the stored session) and must spend one of its address's
// tokens, not two.
func TestAdmitNewSessionsOncePerRequest(t *testing.T) {
	l, err := addrlimit.New(1, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	admit := admitNewSessions(l, func(c *fiber.Ctx) string { return c.Get("X-Client") })
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		first, second := admit(c), admit(c)
		if first != second {
			t.Errorf("one request admitted %v then %v", first, second)
		}
		if first {
			return c.SendString("yes")
		}
		return c.SendString("no")
	})
	visit := func(client string) string {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Client", client)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 3)
		n, _ := resp.Body.Read(b)
		return string(b[:n])
	}
	for i, want := range []string{"yes", "yes", "no"} {
		if got := visit("192.0.2.1"); got != want {
			t.Errorf("request %d from one address: admitted %q, want %q (burst 2)", i+1, got, want)
		}
	}
	if got := visit("192.0.2.2"); got != "yes" {
		t.Errorf("another address: admitted %q, want yes", got)
	}
}
