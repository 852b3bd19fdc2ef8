package routes

import (
	"context"
	"database/sql"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/templates"
)

func mustRenderer(t testing.TB) *renderer {
	t.Helper()
	a, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRenderer(a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A page is rendered into a pooled buffer that goes back to the pool when
// render returns; the response must not keep pointing into it, or the next
// page rendered could overwrite it before it is sent.
func TestRenderedBodyOutlivesItsBuffer(t *testing.T) {
	r := mustRenderer(t)
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		if err := r.render(c, 200, templates.MessagePage(r.in(noSection), &templates.Message{Heading: "Heading", Message: "Message"})); err != nil {
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
	view := newBookDetail(book)
	page, err := r.bytes(context.Background(), templates.BookDetailPage(r.in(booksSection), &view))
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
