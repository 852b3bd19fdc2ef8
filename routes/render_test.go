package routes

import (
	"database/sql"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

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

// A copy's due date shows only while it is not available, as Django's
// template has it.
func TestBookPageShowsDueDateOnlyForCopiesOut(t *testing.T) {
	r := mustRenderer(t)
	due := sql.NullTime{Time: time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC), Valid: true}
	book := repository.Book{ID: 1, Title: "T", Copies: []repository.Copy{
		{ID: "out", Status: "o", DueBack: due},
		{ID: "back", Status: "a", DueBack: due},
		{ID: "kept", Status: "m"},
	}}
	page, err := r.bytes("book_detail", newBookDetailPage(book))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	if n := strings.Count(html, "Due to be returned:</strong> May. 6, 2031"); n != 1 {
		t.Errorf("due date shown %d times, want once (the copy on loan):\n%s", n, html)
	}
	for _, label := range []string{">On loan<", ">Available<", ">Maintenance<"} {
		if !strings.Contains(html, label) {
			t.Errorf("page lacks status %s", label)
		}
	}
}
