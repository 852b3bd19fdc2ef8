package routes

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestClientIP(t *testing.T) {
	// app.Test's connections come from 0.0.0.0.
	peerTrusted := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		header  string
		want    string
	}{
		{"no header", peerTrusted, "", "0.0.0.0"},
		{"untrusted peer's header is ignored", nil, "203.0.113.9", "0.0.0.0"},
		{"trusted peer", peerTrusted, "203.0.113.9", "203.0.113.9"},
		{"client-forged left-most entry is skipped", peerTrusted, "198.51.100.1, 203.0.113.9", "203.0.113.9"},
		{"trusted hops are walked past", peerTrusted, "203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"garbage stops the walk", peerTrusted, "nonsense, 10.1.2.3", "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ips := clientIPs{header: "X-Forwarded-For", trusted: tt.trusted}
			app := fiber.New()
			app.Get("/", func(c *fiber.Ctx) error { return c.SendString(ips.of(c)) })
			req := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				req.Header.Set("X-Forwarded-For", tt.header)
			}
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			n, _ := resp.Body.Read(buf)
			if got := string(buf[:n]); got != tt.want {
				t.Errorf("client IP = %q, want %q", got, tt.want)
			}
		})
	}
}
