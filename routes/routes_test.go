package routes_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/internal/testkit"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/routes"
)

// fakeCatalog is a catalog of n books by one author, in memory.
type fakeCatalog struct {
	books       int
	authors     int
	countsCalls atomic.Int64
	err         error // returned by every call when set
}

func (f *fakeCatalog) Counts(context.Context) (repository.Counts, error) {
	f.countsCalls.Add(1)
	if f.err != nil {
		return repository.Counts{}, f.err
	}
	return repository.Counts{Books: int64(f.books), Copies: int64(3 * f.books), CopiesAvailable: int64(f.books), Authors: int64(f.authors), Genres: 4}, nil
}

func (f *fakeCatalog) Books(_ context.Context, limit, offset int) ([]repository.BookSummary, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []repository.BookSummary
	for i := offset; i < min(offset+limit, f.books); i++ {
		out = append(out, repository.BookSummary{ID: int64(i + 1), Title: fmt.Sprintf("Book %03d", i+1),
			AuthorID: sql.NullInt64{Int64: 1, Valid: true}, AuthorFirstName: sql.NullString{String: "Ada", Valid: true}, AuthorLastName: sql.NullString{String: "Lovelace", Valid: true}})
	}
	return out, nil
}

func (f *fakeCatalog) Authors(_ context.Context, limit, offset int) ([]repository.Author, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []repository.Author
	for i := offset; i < min(offset+limit, f.authors); i++ {
		out = append(out, repository.Author{ID: int64(i + 1), FirstName: "First", LastName: fmt.Sprintf("Last%03d", i+1)})
	}
	return out, nil
}

func (f *fakeCatalog) Book(_ context.Context, id int64) (repository.Book, error) {
	if f.err != nil {
		return repository.Book{}, f.err
	}
	if id > int64(f.books) {
		return repository.Book{}, fmt.Errorf("book %d: %w", id, repository.ErrNotFound)
	}
	return repository.Book{ID: id, Title: fmt.Sprintf("Book %03d", id), Summary: "<script>alert(1)</script>", ISBN: "9780000000002",
		AuthorID: sql.NullInt64{Int64: 1, Valid: true}, AuthorFirstName: sql.NullString{String: "Ada", Valid: true}, AuthorLastName: sql.NullString{String: "Lovelace", Valid: true},
		Language: sql.NullString{String: "English", Valid: true}, Genres: []string{"Fantasy", "Poetry"},
		Copies: []repository.Copy{{ID: "0b7e3c1e-3f7a-4c39-9a3e-1c2d3e4f5a6b", Imprint: "Penguin, 2003", Status: "o", DueBack: sql.NullTime{Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Valid: true}}}}, nil
}

func (f *fakeCatalog) Author(_ context.Context, id int64) (repository.AuthorDetail, error) {
	if f.err != nil {
		return repository.AuthorDetail{}, f.err
	}
	if id > int64(f.authors) {
		return repository.AuthorDetail{}, fmt.Errorf("author %d: %w", id, repository.ErrNotFound)
	}
	return repository.AuthorDetail{Author: repository.Author{ID: id, FirstName: "Ada", LastName: "Lovelace"},
		Books: []repository.BookSummary{{ID: 1, Title: "Book 001"}}}, nil
}

func (f *fakeCatalog) Ping(context.Context) error { return f.err }

// mustApp builds the site as app does, on a fake catalog and in-memory
// sessions unless deps say otherwise.
func mustApp(t testing.TB, d routes.Deps) *fiber.App {
	t.Helper()
	if d.Catalog == nil {
		d.Catalog = &fakeCatalog{books: 25, authors: 10}
	}
	if d.CountsTTL == 0 {
		d.CountsTTL = time.Minute
	}
	if d.Sessions == nil {
		d.Sessions = sessionsOn(t, session.NewMemoryStore())
	}
	defaults := testConfig(t)
	if d.QueryTimeout == 0 {
		d.QueryTimeout = defaults.QueryTimeout
	}
	if d.CountsStaleLimit == 0 {
		d.CountsStaleLimit = defaults.CountsStaleLimit
	}
	if d.BodyLimit == 0 {
		d.BodyLimit = defaults.BodyLimit
	}
	if d.PageCacheBytes == 0 { // as app runs: pages cached (-1: not)
		d.PageCacheBytes, d.PageCacheTTL = 1<<20, time.Minute
	}
	app, err := routes.New(d)
	if err != nil {
		t.Fatalf("routes.New: %v", err)
	}
	t.Cleanup(func() { _ = app.Shutdown() })
	return app
}

// testConfig is the configuration of an empty environment: the defaults.
func testConfig(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestNewWantsEverySetting: routes has no defaults of its own (config has
// them), so a setting left out is an error that names it.
func TestNewWantsEverySetting(t *testing.T) {
	defaults := testConfig(t)
	complete := func() routes.Deps {
		return routes.Deps{Catalog: &fakeCatalog{books: 1, authors: 1}, Sessions: sessionsOn(t, session.NewMemoryStore()),
			CountsTTL: defaults.CountsTTL, CountsStaleLimit: defaults.CountsStaleLimit,
			QueryTimeout: defaults.QueryTimeout, BodyLimit: defaults.BodyLimit}
	}
	app, err := routes.New(complete())
	if err != nil {
		t.Fatalf("every setting given: %v", err)
	}
	_ = app.Shutdown()
	unsets := map[string]func(*routes.Deps){
		"QueryTimeout":     func(d *routes.Deps) { d.QueryTimeout = 0 },
		"CountsTTL":        func(d *routes.Deps) { d.CountsTTL = 0 },
		"CountsStaleLimit": func(d *routes.Deps) { d.CountsStaleLimit = 0 },
		"BodyLimit":        func(d *routes.Deps) { d.BodyLimit = 0 },
	}
	for name, unset := range unsets {
		d := complete()
		unset(&d)
		_, err := routes.New(d)
		if err == nil {
			t.Errorf("%s 0: accepted", name)
			continue
		}
		for other := range unsets {
			if strings.Contains(err.Error(), other) != (other == name) {
				t.Errorf("%s 0: error %q, want it to name %s alone", name, err, name)
			}
		}
	}
}

// testSecret keys the CSRF tokens of test sites; replicas share it.
var testSecret = []byte("test secret, at least thirty-two bytes long")

// sessionsOn returns a session manager on store with config's default
// settings, changed by change.
func sessionsOn(t testing.TB, store session.Store, change ...func(*session.Options)) *session.Manager {
	t.Helper()
	cfg := testConfig(t)
	opts := session.Options{Lifetime: cfg.SessionLifetime, FirstVisitLifetime: cfg.SessionFirstVisitLifetime, Secret: testSecret}
	for _, f := range change {
		f(&opts)
	}
	m, err := session.New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, app *fiber.App, method, target string, cookies ...*http.Cookie) response {
	t.Helper()
	req := httptest.NewRequest(method, "http://example.test/", nil)
	req.URL.Opaque = target // keep the raw path and query as sent
	req.RequestURI = target
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := app.Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// browser keeps cookies between requests and follows redirects, as a
// real one does; refuseCookies makes it one that stores none.
type browser struct {
	t             testing.TB
	app           *fiber.App
	jar           map[string]*http.Cookie
	refuseCookies bool
	header        http.Header // sent with every request
}

func newBrowser(t testing.TB, app *fiber.App) *browser {
	return &browser{t: t, app: app, jar: map[string]*http.Cookie{}}
}

func (b *browser) cookies() []*http.Cookie {
	var out []*http.Cookie
	for _, c := range b.jar {
		out = append(out, c)
	}
	return out
}

// do sends one request and keeps the cookies the response sets.
func (b *browser) do(method, target string, form url.Values) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://example.test"+target, body)
	req.RequestURI = target // origin form, so the request carries its Host header
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	for _, c := range b.jar {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := b.app.Test(req, 10_000)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !b.refuseCookies {
		for _, c := range resp.Cookies() {
			if c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) {
				delete(b.jar, c.Name)
			} else {
				b.jar[c.Name] = c
			}
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// visit GETs target and follows redirects.
func (b *browser) visit(target string) response {
	b.t.Helper()
	return b.follow(b.do("GET", target, nil))
}

// submit posts a form and follows the redirect that answers it.
func (b *browser) submit(target string, form url.Values) response {
	b.t.Helper()
	return b.follow(b.do("POST", target, form))
}

func (b *browser) follow(r response) response {
	b.t.Helper()
	for range 5 {
		if r.status < 300 || r.status >= 400 {
			return r
		}
		r = b.do("GET", r.header.Get("Location"), nil)
	}
	b.t.Fatalf("too many redirects")
	return r
}

var csrfRE = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

func csrfTokenIn(t testing.TB, r response) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("page has no CSRF token:\n%s", r.body)
	}
	return m[1]
}

func sessionCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	return cookieNamed(r, session.CookieName)
}

// cookieNamed is the cookie name that r sets, or nil.
func cookieNamed(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var visitsRE = regexp.MustCompile(`<p>You have visited this page (\d+) times?\.</p>`)

func visits(t *testing.T, r response) int {
	t.Helper()
	m := visitsRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no visit count in page (status %d):\n%s", r.status, r.body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestStatusCodes(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"root redirects", "GET", "/", 302},
		{"home without cookies: the cookie check", "GET", "/catalog/", 302},
		{"home, cookies refused", "GET", "/catalog/?cookies=check", 200},
		{"head home: the cookie check, as GET", "HEAD", "/catalog/", 302},
		{"books", "GET", "/catalog/books/", 200},
		{"books page 3 (last)", "GET", "/catalog/books/?page=3", 200},
		{"books page last", "GET", "/catalog/books/?page=last", 200},
		{"books page 4 out of range", "GET", "/catalog/books/?page=4", 404},
		{"books page 0", "GET", "/catalog/books/?page=0", 404},
		{"books page negative", "GET", "/catalog/books/?page=-1", 404},
		{"books page not a number", "GET", "/catalog/books/?page=abc", 404},
		{"books page huge", "GET", "/catalog/books/?page=99999999999999999999999", 404},
		{"books page plus sign", "GET", "/catalog/books/?page=%2B2", 404},
		{"books page repeated", "GET", "/catalog/books/?page=1&page=2", 200},
		{"authors", "GET", "/catalog/authors/", 200},
		{"authors page 2 out of range", "GET", "/catalog/authors/?page=2", 404},
		{"book found", "GET", "/catalog/book/1", 200},
		{"book unknown", "GET", "/catalog/book/26", 404},
		{"book not a number", "GET", "/catalog/book/abc", 404},
		{"book negative", "GET", "/catalog/book/-1", 404},
		{"book zero", "GET", "/catalog/book/0", 404},
		{"book overflow", "GET", "/catalog/book/9223372036854775808", 404},
		{"book NUL", "GET", "/catalog/book/1%00", 404},
		{"book invalid UTF-8", "GET", "/catalog/book/%ff%fe", 404},
		{"author found", "GET", "/catalog/author/1", 200},
		{"author unknown", "GET", "/catalog/author/11", 404},
		{"unknown path", "GET", "/nope", 404},
		{"static traversal", "GET", "/static/..%2f..%2fgo.mod", 404},
		{"static unknown", "GET", "/static/style.css", 404},
		{"post home", "POST", "/catalog/", 405},
		{"dismiss without a token", "POST", "/catalog/notice/dismiss", 403},
		{"forget without a token", "POST", "/catalog/forget/", 403},
		{"get dismiss", "GET", "/catalog/notice/dismiss", 405},
		{"per_page 25", "GET", "/catalog/books/?per_page=25", 200},
		{"per_page not a choice", "GET", "/catalog/books/?per_page=7", 404},
		{"per_page not a number", "GET", "/catalog/books/?per_page=x", 404},
		{"per_page 25, page 2 out of range", "GET", "/catalog/books/?per_page=25&page=2", 404},
		{"delete book", "DELETE", "/catalog/book/1", 405},
		{"livez", "GET", "/livez", 200},
		{"readyz", "GET", "/readyz", 200},
		{"long path", "GET", "/catalog/" + strings.Repeat("a", 9000), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, app, tt.method, tt.path)
			if r.status != tt.want {
				t.Fatalf("%s %s = %d, want %d\n%s", tt.method, tt.path, r.status, tt.want, r.body)
			}
			if r.status >= 400 && tt.method == "GET" && !strings.Contains(r.body, `class="sidebar"`) {
				t.Errorf("error page is not in the site's layout:\n%s", r.body)
			}
		})
	}
}

func TestHomePageShowsCountsAndVisits(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	first := newBrowser(t, app).visit("/catalog/")
	for _, want := range []string{
		"<h1>Local Library Home</h1>",
		"Dynamic content",
		"<li><strong>Books:</strong> 25</li>",
		"<li><strong>Copies:</strong> 75</li>",
		"<li><strong>Copies available:</strong> 25</li>",
		"<li><strong>Authors:</strong> 10</li>",
		"<li><strong>Genres:</strong> 4</li>",
		"<p>You have visited this page 1 time.</p>",
	} {
		if !strings.Contains(first.body, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	cookie := sessionCookie(t, first)
	if cookie == nil {
		t.Fatal("first visit set no session cookie")
	}
	for want := 2; want <= 3; want++ {
		if got := visits(t, get(t, app, "GET", "/catalog/", cookie)); got != want {
			t.Fatalf("visit %d reads %d", want, got)
		}
	}
	if got := visits(t, newBrowser(t, app).visit("/catalog/")); got != 1 {
		t.Errorf("another browser reads %d, want 1", got)
	}
}

func TestBookDetailEscapesCatalogText(t *testing.T) {
	r := get(t, mustApp(t, routes.Deps{}), "GET", "/catalog/book/2")
	if strings.Contains(r.body, "<script>alert(1)</script>") {
		t.Fatal("summary was not escaped")
	}
	for _, want := range []string{"Title: Book 002", `<a href="/catalog/author/1">Lovelace, Ada</a>`, "9780000000002", "English", "Fantasy, Poetry", "On loan", "Dec. 1, 2026"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("book page lacks %q", want)
		}
	}
}

func TestPagination(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	tests := []struct {
		path             string
		first, last      string
		hasPrev, hasNext bool
		pageLine         string
	}{
		{"/catalog/books/", "Book 001", "Book 010", false, true, "Page 1 of 3."},
		{"/catalog/books/?page=2", "Book 011", "Book 020", true, true, "Page 2 of 3."},
		{"/catalog/books/?page=3", "Book 021", "Book 025", true, false, "Page 3 of 3."},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := get(t, app, "GET", tt.path)
			for _, want := range []string{tt.first, tt.last, tt.pageLine} {
				if !strings.Contains(r.body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if got := strings.Contains(r.body, `rel="prev"`); got != tt.hasPrev {
				t.Errorf("previous link = %v, want %v", got, tt.hasPrev)
			}
			if got := strings.Contains(r.body, `rel="next"`); got != tt.hasNext {
				t.Errorf("next link = %v, want %v", got, tt.hasNext)
			}
		})
	}
	empty := mustApp(t, routes.Deps{Catalog: &fakeCatalog{}})
	if r := get(t, empty, "GET", "/catalog/books/"); r.status != 200 || !strings.Contains(r.body, "There are no books") {
		t.Errorf("empty catalog: status %d", r.status)
	}
}

func TestFailuresShowNoInternals(t *testing.T) {
	secret := "secret-table-name-xyz"
	tests := []struct {
		name       string
		err        error
		want       int
		retryAfter bool
	}{
		{"bug", errors.New(secret), 500, false},
		{"database down", fmt.Errorf("%s: %w", secret, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), 503, true},
		{"deadline", fmt.Errorf("%s: %w", secret, context.DeadlineExceeded), 503, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := mustApp(t, routes.Deps{Catalog: &fakeCatalog{err: tt.err}})
			for _, path := range []string{"/catalog/", "/catalog/books/", "/catalog/book/1", "/catalog/author/1"} {
				r := get(t, app, "GET", path, &http.Cookie{Name: session.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"})
				if r.status != tt.want {
					t.Errorf("%s = %d, want %d", path, r.status, tt.want)
				}
				if strings.Contains(r.body, secret) || strings.Contains(r.body, "goroutine") {
					t.Errorf("%s shows internals:\n%s", path, r.body)
				}
				if got := r.header.Get("Retry-After") != ""; got != tt.retryAfter {
					t.Errorf("%s Retry-After present = %v, want %v", path, got, tt.retryAfter)
				}
			}
		})
	}
}

func TestCountsAreCached(t *testing.T) {
	catalog := &fakeCatalog{books: 5, authors: 2}
	app := mustApp(t, routes.Deps{Catalog: catalog, CountsTTL: time.Hour})
	for range 20 {
		get(t, app, "GET", "/catalog/?cookies=check")
	}
	if n := catalog.countsCalls.Load(); n != 1 {
		t.Fatalf("20 home pages ran %d counts queries, want 1", n)
	}
}

func TestSecurityHeaders(t *testing.T) {
	r := newBrowser(t, mustApp(t, routes.Deps{})).visit("/catalog/")
	for header, want := range map[string]string{
		"Content-Security-Policy":      "frame-ancestors 'none'",
		"X-Content-Type-Options":       "nosniff",
		"Referrer-Policy":              "same-origin",
		"X-Frame-Options":              "DENY",
		"Permissions-Policy":           "camera=()",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
	} {
		if got := r.header.Get(header); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", header, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %s", csp)
	}
	if r.header.Get("Server") != "" {
		t.Errorf("Server banner: %q", r.header.Get("Server"))
	}
}

func TestStaticFilesAreCached(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	home := newBrowser(t, app).visit("/catalog/")
	m := regexp.MustCompile(`href="(/static/style\.[0-9a-f]+\.css)"`).FindStringSubmatch(home.body)
	if m == nil {
		t.Fatal("home page links no stylesheet")
	}
	css := get(t, app, "GET", m[1])
	if css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet: status %d, type %q", css.status, css.header.Get("Content-Type"))
	}
	if cc := css.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
		t.Errorf("Cache-Control = %q", cc)
	}
}

func TestCookieAttributes(t *testing.T) {
	tests := []struct {
		name   string
		opts   func(*session.Options)
		secure bool
		maxAge int
	}{
		{"defaults: two weeks", func(*session.Options) {}, false, 14 * 24 * 3600},
		{"secure, one hour", func(o *session.Options) { o.CookieSecure, o.Lifetime = session.SecureAlways, time.Hour }, true, 3600},
		{"ends with the browser", func(o *session.Options) { o.ExpireAtBrowserClose = true }, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newBrowser(t, mustApp(t, routes.Deps{Sessions: sessionsOn(t, session.NewMemoryStore(), tt.opts)})).visit("/catalog/")
			name := session.CookieName
			if tt.secure {
				name = session.HostPrefix + name
			}
			c := cookieNamed(r, name)
			if c == nil {
				t.Fatalf("no %s cookie", name)
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tt.secure || c.MaxAge != tt.maxAge {
				t.Errorf("cookie %+v: want HttpOnly, Lax, Path=/, Secure=%v, MaxAge=%d", c, tt.secure, tt.maxAge)
			}
			if len(c.Value) < 22 || strings.ContainsAny(c.Value, " ;=") {
				t.Errorf("session id %q is not an opaque 128-bit id", c.Value)
			}
		})
	}
}

// viaProxy is a trusted proxy for requests made by app.Test, whose peer
// address is 0.0.0.0.
var viaProxy = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}

// TestSecureCookiesHaveHostNames: whenever the cookies are Secure - by
// setting, or on a request a trusted proxy says came over HTTPS - every
// cookie the site sets is __Host-: Secure, Path=/, no Domain, so that
// neither a sibling subdomain nor a plain-HTTP response can plant it.
// Without Secure the names stay Django's. A client's own X-Forwarded-Proto
// changes nothing.
func TestSecureCookiesHaveHostNames(t *testing.T) {
	https := http.Header{"X-Forwarded-Proto": {"https"}}
	for _, tt := range []struct {
		name    string
		mode    session.SecureMode
		trusted []netip.Prefix
		header  http.Header
		secure  bool
	}{
		{"auto, plain HTTP", session.SecureOverHTTPS, nil, nil, false},
		{"auto, HTTPS through a trusted proxy", session.SecureOverHTTPS, viaProxy, https, true},
		{"auto, a client's own X-Forwarded-Proto", session.SecureOverHTTPS, nil, https, false},
		{"auto, a trusted proxy saying http", session.SecureOverHTTPS, viaProxy, http.Header{"X-Forwarded-Proto": {"http"}}, false},
		{"true, plain HTTP", session.SecureAlways, nil, nil, true},
		{"false, HTTPS through a trusted proxy", session.SecureNever, viaProxy, https, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sessions := sessionsOn(t, session.NewMemoryStore(), func(o *session.Options) { o.CookieSecure = tt.mode })
			b := newBrowser(t, mustApp(t, routes.Deps{Sessions: sessions, TrustedProxies: tt.trusted}))
			b.header = tt.header
			var set []*http.Cookie
			for _, target := range []string{"/catalog/", "/catalog/books/?per_page=25"} {
				r := b.do("GET", target, nil)
				for r.status == fiber.StatusFound {
					set = append(set, (&http.Response{Header: r.header}).Cookies()...)
					r = b.do("GET", r.header.Get("Location"), nil)
				}
				set = append(set, (&http.Response{Header: r.header}).Cookies()...)
				if r.status != 200 {
					t.Fatalf("GET %s: %d", target, r.status)
				}
			}
			names := map[string]bool{}
			for _, c := range set {
				names[c.Name] = true
				hostName := strings.HasPrefix(c.Name, session.HostPrefix)
				if c.Secure != tt.secure || hostName != tt.secure || c.Path != "/" || c.Domain != "" {
					t.Errorf("cookie %s: Secure=%v Path=%q Domain=%q; want Secure=%v and a __Host- name just when Secure, Path=/, no Domain",
						c.Name, c.Secure, c.Path, c.Domain, tt.secure)
				}
			}
			prefix := ""
			if tt.secure {
				prefix = session.HostPrefix
			}
			for _, want := range []string{session.CookieName, session.PerPageCookie, "cookietest"} {
				if !names[prefix+want] {
					t.Errorf("no %s cookie among %v", prefix+want, names)
				}
			}
		})
	}
}

// With Secure on the site reads only the __Host- names it sets: a plain
// sessionid or per_page tossed in by a sibling subdomain or a plain-HTTP
// response is no session, even when it names a real one.
func TestTossedPlainCookiesAreNotRead(t *testing.T) {
	sessions := sessionsOn(t, session.NewMemoryStore(), func(o *session.Options) { o.CookieSecure = session.SecureAlways })
	app := mustApp(t, routes.Deps{Sessions: sessions})
	attacker := newBrowser(t, app)
	home := attacker.visit("/catalog/")
	token := csrfTokenIn(t, home)
	planted := attacker.jar[session.HostPrefix+session.CookieName]
	if planted == nil {
		t.Fatalf("no __Host- session cookie: %v", attacker.jar)
	}

	victim := newBrowser(t, app)
	victim.jar[session.CookieName] = &http.Cookie{Name: session.CookieName, Value: planted.Value}
	victim.jar[session.PerPageCookie] = &http.Cookie{Name: session.PerPageCookie, Value: "50"}
	if r := victim.do("POST", "/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {token}}); r.status != fiber.StatusForbidden {
		t.Errorf("a form forged with the planted session and its token: %d, want 403", r.status)
	}
	r := victim.visit("/catalog/")
	if own := victim.jar[session.HostPrefix+session.CookieName]; visits(t, r) != 1 || own == nil || own.Value == planted.Value {
		t.Errorf("the victim's home page: %d visits, own session %v; want 1 and an id of its own", visits(t, r), own)
	}
	if list := victim.visit("/catalog/books/"); !strings.Contains(list.body, `<option value="10" selected>`) {
		t.Error("a planted per_page cookie was read")
	}
	if got := visits(t, attacker.visit("/catalog/")); got != 2 {
		t.Errorf("the attacker's own session reads %d visits, want 2: the victim's visit counted there", got)
	}
}

// newMemcachedStore returns a memcachestore on cfg, with the service's
// pool size and key placement, closed when the test ends.
func newMemcachedStore(t testing.TB, cfg memcachestore.Config) *memcachestore.Storage {
	t.Helper()
	cfg.MaxConns, cfg.Place = testConfig(t).MemcachedMaxConns, session.Placement
	store, err := memcachestore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// memcachedForTest returns a Storage on LOCALLIBRARY_TEST_MEMCACHED, or
// skips (fails with LOCALLIBRARY_TEST_REQUIRE_SERVICES=1) when it is unset.
func memcachedForTest(t testing.TB) *memcachestore.Storage {
	t.Helper()
	addr := testkit.Require(t, testkit.EnvMemcached)
	// A generous timeout: CI runs test packages in parallel on two cores.
	return newMemcachedStore(t, memcachestore.Config{Servers: []string{addr}, Timeout: 2 * time.Second, KeyPrefix: fmt.Sprintf("test%d:", time.Now().UnixNano())})
}

// sessionBackends runs a test on in-memory sessions and, when configured,
// on a real memcached.
func sessionBackends(t *testing.T, run func(t *testing.T, newApp func() *fiber.App)) {
	t.Run("memory", func(t *testing.T) {
		app := mustApp(t, routes.Deps{})
		run(t, func() *fiber.App { return app })
	})
	t.Run("memcached", func(t *testing.T) {
		store := memcachedForTest(t)
		run(t, func() *fiber.App { return mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)}) })
	})
}

func TestSessionContinuesAcrossInstancesAndRestarts(t *testing.T) {
	store := memcachedForTest(t)
	replicaA := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	replicaB := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	cookie := sessionCookie(t, newBrowser(t, replicaA).visit("/catalog/"))
	if got := visits(t, get(t, replicaB, "GET", "/catalog/", cookie)); got != 2 {
		t.Fatalf("second replica read %d, want 2", got)
	}
	_ = replicaA.Shutdown()
	_ = replicaB.Shutdown()
	restarted := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	if got := visits(t, get(t, restarted, "GET", "/catalog/", cookie)); got != 3 {
		t.Fatalf("after a restart of every replica read %d, want 3", got)
	}
}

func TestMemcachedDownDegradesHomePage(t *testing.T) {
	// A port nothing listens on: every memcached call fails fast.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	store := newMemcachedStore(t, memcachestore.Config{Servers: []string{addr}, Timeout: 200 * time.Millisecond})
	app := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	r := get(t, app, "GET", "/catalog/", &http.Cookie{Name: session.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"})
	if r.status != 200 || !strings.Contains(r.body, "visit count is unavailable") || !strings.Contains(r.body, "<strong>Books:</strong> 25") {
		t.Fatalf("status %d:\n%s", r.status, r.body)
	}
	if visitsRE.MatchString(r.body) {
		t.Error("a count was shown while memcached is down")
	}
	if b := get(t, app, "GET", "/catalog/books/"); b.status != 200 {
		t.Errorf("book list with memcached down: %d", b.status)
	}
}

// scrape reads m as Prometheus does.
func scrape(t testing.TB, m *routes.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("metrics: status %d\n%.300s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestMetricsEndpoint(t *testing.T) {
	m := routes.NewMetrics()
	app := mustApp(t, routes.Deps{Metrics: m})
	get(t, app, "GET", "/catalog/?cookies=check")
	get(t, app, "GET", "/catalog/book/999")
	get(t, app, "GET", "/no/such/page")
	get(t, app, "GET", "/catalog/no/such/page")
	if r := get(t, app, "GET", "/metrics"); r.status != 404 {
		t.Errorf("/metrics on the site: %d, want 404 (it has a listener of its own)", r.status)
	}
	body := scrape(t, m)
	for _, want := range []string{
		`locallibrary_http_request_duration_seconds_count{method="GET",route="/catalog/",status="200"} 1`,
		`locallibrary_http_request_duration_seconds_count{method="GET",route="/catalog/book/:id",status="404"} 1`,
		`locallibrary_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 3`,
		`locallibrary_counts_cache_total{result="miss"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `route="/"`) {
		t.Errorf("a 404 is labelled with the root route:\n%s", body)
	}
}

func TestNoticeIsDismissedForTheSession(t *testing.T) {
	sessionBackends(t, func(t *testing.T, newApp func() *fiber.App) {
		replicaA, replicaB := newApp(), newApp()
		b := newBrowser(t, replicaA)
		first := b.visit("/catalog/")
		if !strings.Contains(first.body, "This catalog is a demo") {
			t.Fatal("first visit shows no notice")
		}
		token := csrfTokenIn(t, first)
		if r := b.do("POST", "/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {"forged" + token}}); r.status != 403 {
			t.Fatalf("dismiss with a wrong token: %d, want 403", r.status)
		}
		after := b.submit("/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {token}})
		if after.status != 200 || strings.Contains(after.body, "This catalog is a demo") {
			t.Fatalf("notice still shown after Got it (status %d)", after.status)
		}
		if got := visits(t, after); got != 2 {
			t.Errorf("the page after Got it reads %d visits, want 2", got)
		}
		b.app = replicaB
		if r := b.visit("/catalog/"); strings.Contains(r.body, "This catalog is a demo") || visits(t, r) != 3 {
			t.Errorf("on another replica the notice came back or the count is off:\n%s", r.body)
		}
		other := newBrowser(t, replicaA)
		other.visit("/catalog/")
		if r := other.do("POST", "/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {token}}); r.status != 403 {
			t.Errorf("another session's token was accepted: %d", r.status)
		}
		if r := other.do("POST", "/catalog/notice/dismiss?csrfmiddlewaretoken="+csrfTokenIn(t, other.visit("/catalog/")), nil); r.status != 403 {
			t.Errorf("a token in the query string was accepted: %d", r.status)
		}
	})
}

func TestPageSizeIsRemembered(t *testing.T) {
	sessionBackends(t, func(t *testing.T, newApp func() *fiber.App) {
		b := newBrowser(t, newApp())
		b.visit("/catalog/") // a session, as a browser has after the home page
		r := b.visit("/catalog/books/?per_page=25")
		if !strings.Contains(r.body, "Book 025") || strings.Contains(r.body, `rel="next"`) {
			t.Fatalf("per_page=25 did not show 25 books")
		}
		later := b.visit("/catalog/books/")
		if !strings.Contains(later.body, "Book 025") || !strings.Contains(later.body, `<option value="25" selected>`) {
			t.Fatal("the page size was not remembered")
		}
		authors := b.visit("/catalog/authors/")
		if !strings.Contains(authors.body, `<option value="25" selected>`) {
			t.Error("the author list ignores the remembered page size")
		}
		b.visit("/catalog/books/?per_page=10")
		if r := b.visit("/catalog/books/"); !strings.Contains(r.body, `href="/catalog/books/?page=2"`) {
			t.Error("going back to 10 per page was not remembered")
		}
	})
}

// A page-size cookie that is not a size the site offers reads as none.
func TestMalformedPageSizeCookieIsIgnored(t *testing.T) {
	app := mustApp(t, routes.Deps{Catalog: &fakeCatalog{books: 120, authors: 1}})
	for _, value := range []string{"abc", "7", "0", "-25", "+25", "99999999999999999999999", "25x", ""} {
		r := get(t, app, "GET", "/catalog/books/", &http.Cookie{Name: session.PerPageCookie, Value: value})
		if r.status != 200 || !strings.Contains(r.body, `<option value="10" selected>`) {
			t.Errorf("per_page cookie %q: %d, not the default page size", value, r.status)
		}
	}
}

func TestPagerKeepsThePageSize(t *testing.T) {
	app := mustApp(t, routes.Deps{Catalog: &fakeCatalog{books: 120, authors: 1}})
	r := newBrowser(t, app).visit("/catalog/books/?per_page=50&page=2")
	for _, want := range []string{`href="/catalog/books/?page=1&amp;per_page=50"`, `href="/catalog/books/?page=3&amp;per_page=50"`, "Page 2 of 3."} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestForgetMeStartsANewSession(t *testing.T) {
	sessionBackends(t, func(t *testing.T, newApp func() *fiber.App) {
		b := newBrowser(t, newApp())
		home := b.visit("/catalog/")
		b.submit("/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {csrfTokenIn(t, home)}})
		b.visit("/catalog/books/?per_page=50")
		oldID := b.jar[session.CookieName].Value
		if got := visits(t, b.visit("/catalog/")); got != 3 {
			t.Fatalf("before forgetting: %d visits, want 3", got)
		}
		page := b.visit("/catalog/forget/")
		after := b.submit("/catalog/forget/", url.Values{"csrfmiddlewaretoken": {csrfTokenIn(t, page)}})
		if got := visits(t, after); got != 1 {
			t.Errorf("after Forget me the count reads %d, want 1", got)
		}
		if b.jar[session.CookieName].Value == oldID {
			t.Error("Forget me kept the session id")
		}
		if !strings.Contains(after.body, "This catalog is a demo") {
			t.Error("the dismissed notice stayed dismissed after Forget me")
		}
		if r := b.visit("/catalog/books/"); strings.Contains(r.body, `<option value="50" selected>`) {
			t.Error("the page size survived Forget me")
		}
		stale := &http.Cookie{Name: session.CookieName, Value: oldID}
		if r := get(t, b.app, "GET", "/catalog/", stale); visits(t, r) != 1 || sessionCookie(t, r).Value == oldID {
			t.Error("the forgotten session id still works")
		}
	})
}

func TestBrowserRefusingCookiesIsTold(t *testing.T) {
	b := newBrowser(t, mustApp(t, routes.Deps{}))
	b.refuseCookies = true
	for range 2 {
		r := b.visit("/catalog/")
		if r.status != 200 || !strings.Contains(r.body, "Your browser is not accepting cookies, so visits can't be counted") {
			t.Fatalf("status %d, no cookie hint:\n%s", r.status, r.body)
		}
		if visitsRE.MatchString(r.body) {
			t.Error("a count is shown to a browser that refuses cookies")
		}
	}
}

func TestLogLinesCarryTheRequestID(t *testing.T) {
	var logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app := mustApp(t, routes.Deps{Logger: logger, Catalog: &fakeCatalog{err: errors.New("boom")}})
	r := get(t, app, "GET", "/catalog/book/1")
	id := r.header.Get("X-Request-ID")
	if r.status != 500 || id == "" {
		t.Fatalf("status %d, request id %q", r.status, id)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want an error line and an access line, got:\n%s", logs.String())
	}
	for _, line := range lines {
		if !strings.Contains(line, `"request_id":"`+id+`"`) {
			t.Errorf("log line without the request id %s: %s", id, line)
		}
	}
}

func TestCookieCheckLetsABrowserThroughOnceItAccepts(t *testing.T) {
	b := newBrowser(t, mustApp(t, routes.Deps{}))
	b.refuseCookies = true
	if r := b.visit("/catalog/"); !strings.Contains(r.body, "not accepting cookies") {
		t.Fatal("no hint for a browser refusing cookies")
	}
	b.refuseCookies = false // the visitor allows cookies and reloads the check page
	b.visit("/catalog/?cookies=check")
	if r := b.visit("/catalog/?cookies=check"); visits(t, r) != 1 {
		t.Fatalf("after allowing cookies the visitor is still stuck:\n%s", r.body)
	}
}

func TestMetricsAfterMixedMethods(t *testing.T) {
	m := routes.NewMetrics()
	app := mustApp(t, routes.Deps{Metrics: m})
	for range 5 {
		get(t, app, "GET", "/catalog/?cookies=check")
		get(t, app, "POST", "/catalog/notice/dismiss")
		get(t, app, "HEAD", "/catalog/")
		get(t, app, "DELETE", "/catalog/book/1")
	}
	body := scrape(t, m)
	for _, want := range []string{`method="GET"`, `method="POST"`, `method="HEAD"`, `method="DELETE"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// slowCatalog counts like fakeCatalog but takes its time, as a million
// copies do.
type slowCatalog struct {
	*fakeCatalog
	delay time.Duration
}

func (s *slowCatalog) Counts(ctx context.Context) (repository.Counts, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return repository.Counts{}, ctx.Err()
	}
	return s.fakeCatalog.Counts(ctx)
}

func TestSlowCountsNeverHoldAPage(t *testing.T) {
	catalog := &slowCatalog{fakeCatalog: &fakeCatalog{books: 5, authors: 2}, delay: 300 * time.Millisecond}
	app := mustApp(t, routes.Deps{Catalog: catalog, CountsTTL: 50 * time.Millisecond, QueryTimeout: 100 * time.Millisecond})
	// The first page has no counts and waits at most the query timeout;
	// the refresh it started goes on and its counts serve later pages.
	if r := get(t, app, "GET", "/catalog/?cookies=check"); r.status != 503 {
		t.Fatalf("first page while the first count runs: %d, want 503", r.status)
	}
	waitUntil(t, "the first count lands", 5*time.Second, func() bool {
		return get(t, app, "GET", "/catalog/?cookies=check").status == 200
	})
	// Expired counts are served at once while the next refresh runs.
	time.Sleep(60 * time.Millisecond)
	start := time.Now()
	r := get(t, app, "GET", "/catalog/?cookies=check")
	if took := time.Since(start); r.status != 200 || took > 150*time.Millisecond {
		t.Errorf("with expired counts: %d after %v, want 200 without waiting for the 300ms refresh", r.status, took)
	}
	if strings.Contains(r.body, "may be out of date") {
		t.Error("counts being refreshed are marked stale")
	}
}

// A form kept from before "Forget me" (the back button, a second tab)
// carries a token of the ended session: the answer is a 403 page in the
// site's layout that says what happened and what to do, never bare text.
func TestStaleFormAfterForgetMeIsAClear403(t *testing.T) {
	b := newBrowser(t, mustApp(t, routes.Deps{}))
	home := b.visit("/catalog/")
	forget := b.visit("/catalog/forget/")
	b.submit("/catalog/forget/", url.Values{"csrfmiddlewaretoken": {csrfTokenIn(t, forget)}})
	b.visit("/catalog/")
	for _, form := range []struct{ path, token string }{
		{"/catalog/forget/", csrfTokenIn(t, forget)},
		{"/catalog/notice/dismiss", csrfTokenIn(t, home)},
	} {
		r := b.do("POST", form.path, url.Values{"csrfmiddlewaretoken": {form.token}})
		if r.status != fiber.StatusForbidden {
			t.Fatalf("POST %s with a stale token: %d, want 403", form.path, r.status)
		}
		for _, want := range []string{`<main id="content"`, "<h1>This form has expired</h1>", "reload", `href="/catalog/"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("POST %s: the 403 page lacks %q:\n%s", form.path, want, r.body)
			}
		}
		if r.header.Get("Content-Security-Policy") == "" || r.header.Get(fiber.HeaderCacheControl) != "private, no-store" {
			t.Errorf("POST %s: 403 headers %v", form.path, r.header)
		}
	}
}

// A token is made only for the session the cookie carries. Had the forget
// page given one for any id a client names, whoever named an id could
// forge the forms of a browser they plant it in; an id never stored gets a
// token for a new id, in a new cookie, instead.
func TestNoTokenForASessionIDTheSiteNeverStored(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	named := &http.Cookie{Name: session.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"}
	page := get(t, app, "GET", "/catalog/forget/", named)
	token := csrfTokenIn(t, page)
	issued := sessionCookie(t, page)
	if issued == nil || issued.Value == named.Value {
		t.Fatalf("the forget page left the named id in place: cookie %v", issued)
	}
	for _, tt := range []struct {
		cookie *http.Cookie
		want   int
	}{{named, fiber.StatusForbidden}, {issued, fiber.StatusSeeOther}} {
		b := newBrowser(t, app)
		b.jar[tt.cookie.Name] = tt.cookie
		if r := b.do("POST", "/catalog/forget/", url.Values{"csrfmiddlewaretoken": {token}}); r.status != tt.want {
			t.Errorf("the page's token with the cookie %s: %d, want %d", tt.cookie.Value, r.status, tt.want)
		}
	}
}

// A browser that refuses cookies still gets the Forget me form; sending it
// fails, and the 403 page says why (the cookie) rather than that the form
// expired, which a reload would not fix.
func TestFormWithoutCookiesSaysCookiesAreNeeded(t *testing.T) {
	b := newBrowser(t, mustApp(t, routes.Deps{}))
	b.refuseCookies = true
	page := b.visit("/catalog/forget/")
	r := b.do("POST", "/catalog/forget/", url.Values{"csrfmiddlewaretoken": {csrfTokenIn(t, page)}})
	if r.status != fiber.StatusForbidden {
		t.Fatalf("POST without cookies: %d, want 403", r.status)
	}
	for _, want := range []string{`<main id="content"`, "<h1>Cookies are needed for this</h1>", "allow cookies"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the 403 page lacks %q:\n%s", want, r.body)
		}
	}
}

// During a rolling deploy a page from a new replica names stylesheets by
// hashes an old replica does not know, and the load balancer may send the
// request there. The old replica then serves the file it has, marked to be
// checked again rather than kept a year, instead of a 404 that leaves the
// page unstyled. A name that is not a known file with some hash stays 404.
func TestStaticFileOfAnotherVersion(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	css := get(t, app, "GET", "/static/style.0123abcd.css")
	if css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") || !strings.Contains(css.body, "{") {
		t.Fatalf("another version's stylesheet: status %d, type %q", css.status, css.header.Get("Content-Type"))
	}
	if cc := css.header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("another version's stylesheet: Cache-Control %q, want no-cache (it is not what its name promises)", cc)
	}
	for _, target := range []string{"/static/style.css", "/static/style.0123abcz.css", "/static/style.0123abc.css",
		"/static/nope.0123abcd.css", "/static/style.0123abcd.svg", "/static/.0123abcd.css"} {
		if r := get(t, app, "GET", target); r.status != 404 {
			t.Errorf("GET %s: %d, want 404", target, r.status)
		}
	}
}

// A new browser while memcached is down still gets a token that matches
// its cookie, so "Got it" says the session is unavailable (503, worth a
// retry) rather than that cookies are refused.
func TestNewBrowserWhileMemcachedIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: every memcached call fails fast
	store := newMemcachedStore(t, memcachestore.Config{Servers: []string{addr}, Timeout: 200 * time.Millisecond})
	b := newBrowser(t, mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)}))
	home := b.visit("/catalog/")
	if !strings.Contains(home.body, "visit count is unavailable") {
		t.Fatalf("home page with memcached down:\n%s", home.body)
	}
	r := b.do("POST", "/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {csrfTokenIn(t, home)}})
	if r.status != fiber.StatusServiceUnavailable || !strings.Contains(r.body, "Your session is unavailable") {
		t.Errorf("Got it with memcached down: %d, want 503 saying the session is unavailable\n%s", r.status, r.body)
	}
}

// changingCounts is a catalog whose counts a test changes while pages
// are served, or makes fail.
type changingCounts struct {
	*fakeCatalog
	books   atomic.Int64
	failing atomic.Bool
}

func (c *changingCounts) Counts(context.Context) (repository.Counts, error) {
	if c.failing.Load() {
		return repository.Counts{}, driver.ErrBadConn
	}
	n := c.books.Load()
	return repository.Counts{Books: n, Copies: 3 * n, CopiesAvailable: n, Authors: 2, Genres: 4}, nil
}

// The home page keeps its counts block rendered between changes: every
// change of the counts, and of their staleness, must still reach the page.
func TestTheHomePageShowsTheCountsOfNow(t *testing.T) {
	catalog := &changingCounts{fakeCatalog: &fakeCatalog{books: 5, authors: 2}}
	catalog.books.Store(5)
	app := mustApp(t, routes.Deps{Catalog: catalog, CountsTTL: 20 * time.Millisecond, CountsStaleLimit: time.Hour})
	shows := func(books string, stale bool) func() bool {
		return func() bool {
			r := get(t, app, "GET", "/catalog/?cookies=check")
			return r.status == 200 && strings.Contains(r.body, "<li><strong>Books:</strong> "+books+"</li>") &&
				strings.Contains(r.body, "may be out of date") == stale
		}
	}
	waitUntil(t, "5 books", 5*time.Second, shows("5", false))
	catalog.books.Store(7)
	waitUntil(t, "7 books once the counts changed", 5*time.Second, shows("7", false))
	catalog.failing.Store(true)
	waitUntil(t, "7 books marked out of date while the catalog fails", 5*time.Second, shows("7", true))
	catalog.failing.Store(false)
	catalog.books.Store(8)
	waitUntil(t, "8 books, no longer marked, once it answers", 5*time.Second, shows("8", false))
}
