package routes_test

import (
	"net/http"
	"slices"
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
// home-page request: one that has visited and, with dismissed, clicked
// "Got it" on the notice.
func newHomeRequest(tb testing.TB, d routes.Deps, dismissed bool) *homeRequest {
	tb.Helper()
	app := mustApp(tb, d)
	b := newBrowser(tb, app)
	home := b.visit("/catalog/")
	if dismissed {
		b.submit("/catalog/notice/dismiss", map[string][]string{"csrfmiddlewaretoken": {csrfTokenIn(tb, home)}})
	}
	b.visit("/catalog/") // the browser came back: its session is renewed
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

// The home page of a browser that has clicked "Got it" and of one that
// has not (its page carries the notice's form and token) should cost the
// same.
func BenchmarkHomePageMemorySessions(b *testing.B) {
	for _, dismissed := range []bool{true, false} {
		b.Run(noticeName(dismissed), func(b *testing.B) {
			h := newHomeRequest(b, routes.Deps{CountsTTL: time.Hour}, dismissed)
			b.ReportAllocs()
			for b.Loop() {
				h.do(b)
			}
		})
	}
}

func BenchmarkHomePageMemcached(b *testing.B) {
	store := memcachedForTest(b)
	for _, dismissed := range []bool{true, false} {
		b.Run(noticeName(dismissed), func(b *testing.B) {
			h := newHomeRequest(b, routes.Deps{CountsTTL: time.Hour, Sessions: sessionsOn(b, store)}, dismissed)
			b.ReportAllocs()
			for b.Loop() {
				h.do(b)
			}
		})
	}
}

func noticeName(dismissed bool) string {
	if dismissed {
		return "notice-dismissed"
	}
	return "notice-shown"
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
// templ formats every { expression } with fmt.Sprint and each component
// call adds a closure and context values, so the parts that are the same on
// every view (the navigation, the asset links, the counts) are rendered once
// and kept (templates.NewChrome, shownCounts): 25 and 27, from 38 and 40.
const homePageAllocBudget = 30

func TestHomePageAllocations(t *testing.T) {
	if raceDetector {
		t.Skip("allocations are counted without -race: .ci/run runs this test again without it")
	}
	for _, dismissed := range []bool{true, false} {
		h := newHomeRequest(t, routes.Deps{CountsTTL: time.Hour}, dismissed)
		allocs := testing.AllocsPerRun(200, func() { h.do(t) })
		t.Logf("allocations per home page, %s: %.0f (budget %d)", noticeName(dismissed), allocs, homePageAllocBudget)
		if allocs > homePageAllocBudget {
			t.Errorf("a home page (%s) allocates %.0f times, over the budget of %d", noticeName(dismissed), allocs, homePageAllocBudget)
		}
	}
}

// BenchmarkHomePageNoticeCost reports the time of the home page with the
// notice shown over that with it dismissed, measured in alternating rounds
// so that load from elsewhere on the machine falls on both alike.
func BenchmarkHomePageNoticeCost(b *testing.B) {
	backends := map[string]func() routes.Deps{
		"memory": func() routes.Deps { return routes.Deps{CountsTTL: time.Hour} },
		"memcached": func() routes.Deps {
			return routes.Deps{CountsTTL: time.Hour, Sessions: sessionsOn(b, memcachedForTest(b))}
		},
	}
	for name, deps := range backends {
		b.Run(name, func(b *testing.B) {
			dismissed, shown := newHomeRequest(b, deps(), true), newHomeRequest(b, deps(), false)
			var ratios []float64
			for b.Loop() {
				const perRound = 200
				start := time.Now()
				for range perRound {
					dismissed.do(b)
				}
				mid := time.Now()
				for range perRound {
					shown.do(b)
				}
				ratios = append(ratios, float64(time.Since(mid))/float64(mid.Sub(start)))
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "shown/dismissed")
		})
	}
}
