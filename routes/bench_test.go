package routes_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/routes"
)

// homeRequest drives the home page through the app's whole fasthttp
// handler, with no socket: what a returning browser's request costs the
// service itself.
type homeRequest struct {
	handler fasthttp.RequestHandler
	ctx     fasthttp.RequestCtx
}

// newHomeRequest builds the site on d and returns a returning browser's
// home-page request: one that has visited and dismissed the notice, as the
// benchmark's browsers have.
func newHomeRequest(tb testing.TB, d routes.Deps) *homeRequest {
	tb.Helper()
	app := mustApp(tb, d)
	b := newBrowser(tb, app)
	home := b.visit("/catalog/")
	b.submit("/catalog/notice/dismiss", map[string][]string{"csrfmiddlewaretoken": {csrfTokenIn(tb, home)}})
	h := &homeRequest{handler: app.Handler()}
	h.ctx.Request.SetRequestURI("/catalog/")
	h.ctx.Request.Header.SetMethod(fiber.MethodGet)
	h.ctx.Request.Header.SetHost("example.test")
	for _, c := range b.cookies() {
		h.ctx.Request.Header.SetCookie(c.Name, c.Value)
	}
	return h
}

func (h *homeRequest) do(tb testing.TB) {
	h.ctx.Response.Reset()
	h.handler(&h.ctx)
	if h.ctx.Response.StatusCode() != http.StatusOK {
		tb.Fatalf("home page: %d", h.ctx.Response.StatusCode())
	}
}

func BenchmarkHomePageMemorySessions(b *testing.B) {
	h := newHomeRequest(b, routes.Deps{CountsTTL: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		h.do(b)
	}
}

func BenchmarkHomePageMemcached(b *testing.B) {
	store := memcachedForTest(b)
	h := newHomeRequest(b, routes.Deps{CountsTTL: time.Hour, Sessions: sessionsOn(b, store)})
	b.ReportAllocs()
	for b.Loop() {
		h.do(b)
	}
}

func BenchmarkBookList(b *testing.B) {
	app := mustApp(b, routes.Deps{CountsTTL: time.Hour, Catalog: &fakeCatalog{books: 1000, authors: 10}})
	handler := app.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/catalog/books/?page=7")
	ctx.Request.Header.SetHost("example.test")
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		handler(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("book list: %d", ctx.Response.StatusCode())
		}
	}
}

// homePageAllocBudget holds the allocations of a returning browser's home
// page (in-memory sessions, fresh counts). It was set from what the page
// reaches, with a little room; a change that needs more should say why.
const homePageAllocBudget = 14

func TestHomePageAllocations(t *testing.T) {
	h := newHomeRequest(t, routes.Deps{CountsTTL: time.Hour})
	allocs := testing.AllocsPerRun(200, func() { h.do(t) })
	t.Logf("allocations per home page: %.0f (budget %d)", allocs, homePageAllocBudget)
	if allocs > homePageAllocBudget {
		t.Errorf("a home page allocates %.0f times, over the budget of %d", allocs, homePageAllocBudget)
	}
}
