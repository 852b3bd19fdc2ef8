package routes

import (
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/locallibrary/locallibrary/repository"
)

func mustRenderer(t testing.TB) *renderer {
	t.Helper()
	a, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	pages, err := parsePages(a)
	if err != nil {
		t.Fatal(err)
	}
	return &renderer{pages: pages}
}

// A page is rendered into a pooled buffer that goes back to the pool when
// render returns; the response must not keep pointing into it, or the next
// page rendered could overwrite it before it is sent.
func TestRenderedBodyOutlivesItsBuffer(t *testing.T) {
	r := mustRenderer(t)
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

// The cached shell gives the same page, byte for byte, as rendering it.
func TestHomeShellMatchesTheTemplate(t *testing.T) {
	r := mustRenderer(t)
	shells := &homeShells{renderer: r}
	app := fiber.New()
	var page homePage
	app.Get("/shell", func(c *fiber.Ctx) error { return shells.render(c, page) })
	app.Get("/template", func(c *fiber.Ctx) error { return r.render(c, 200, "home", page) })
	fetch := func(path string) string {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	for _, p := range []homePage{
		{Counts: repository.Counts{Books: 3, Copies: 9}, Visits: 1, VisitsKnown: true},
		{Counts: repository.Counts{Books: 3, Copies: 9}, Visits: 2, VisitsKnown: true},
		{Counts: repository.Counts{Books: 4, Copies: 9}, Visits: 12345, VisitsKnown: true},
		{Counts: repository.Counts{Books: 4, Copies: 9}, CountsStale: true, Visits: 7, VisitsKnown: true},
	} {
		page = p
		if !page.cacheable() {
			t.Fatalf("page %+v is not cacheable", p)
		}
		shell, direct := fetch("/shell"), fetch("/template")
		if shell != direct {
			t.Fatalf("shell and template differ for %+v:\n%s\n---\n%s", p, shell, direct)
		}
		if !strings.Contains(shell, "<strong>Books:</strong> "+strconv.FormatInt(p.Counts.Books, 10)) ||
			!strings.Contains(shell, p.VisitsSentence()) {
			t.Fatalf("the page lost its counts or its visits:\n%s", shell)
		}
	}
}
