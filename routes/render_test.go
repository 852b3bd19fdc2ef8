package routes

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"
)

// A page is rendered into a pooled buffer that goes back to the pool when
// render returns; the response must not keep pointing into it, or the next
// page rendered could overwrite it before it is sent.
func TestRenderedBodyOutlivesItsBuffer(t *testing.T) {
	a, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	pages, err := parsePages(a)
	if err != nil {
		t.Fatal(err)
	}
	r := &renderer{pages: pages}
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		if err := r.render(c, 200, "error", errorPage{"Heading", "Message"}); err != nil {
			return err
		}
		// The pool hands the same buffer straight back to this goroutine.
		reused := bytebufferpool.Get()
		reused.B = reused.B[:cap(reused.B)]
		for i := range reused.B {
			reused.B[i] = 'X'
		}
		return nil
	})
	resp, err := app.Test(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "<h1>Heading</h1>") {
		t.Fatalf("the response was overwritten through the pooled buffer:\n%.200s", body)
	}
}
