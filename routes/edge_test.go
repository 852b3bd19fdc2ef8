package routes_test

import (
	"bufio"
	"context"
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
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/routes"
)

// listen serves app on a loopback port until the test ends and returns
// its address: the hostile inputs below must reach the real server, not
// app.Test, which reports a refused request as its own error.
func listen(t testing.TB, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	return ln.Addr().String()
}

// closedWithin is how long a connection the server should close may stay
// open after its answer: far under the 30 s read timeout it would
// otherwise wait, far over a loaded machine's scheduling delay.
const closedWithin = 3 * time.Second

// exchange writes raw bytes on a new connection and reads one answer. It
// reports whether the server then closed the connection at once.
func exchange(t *testing.T, addr, raw string) (resp *http.Response, body string, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no HTTP answer to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Anything after the answer is a second answer to smuggled bytes, or
	// the server keeping the connection for more.
	_ = conn.SetReadDeadline(time.Now().Add(closedWithin))
	extra, err := br.ReadByte()
	switch {
	case errors.Is(err, io.EOF), isReset(err):
		closed = true
	case err == nil:
		t.Errorf("after the answer to %q the server sent more, starting %q", raw, extra)
	}
	return resp, string(b), closed
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestHostileRequests sends what an attacker sends, over a raw socket:
// each gets its answer as a page of the site's with the security headers,
// and where the framing cannot be trusted the connection ends with it.
func TestHostileRequests(t *testing.T) {
	m := routes.NewMetrics()
	app := mustApp(t, routes.Deps{Metrics: m})
	addr := listen(t, app)
	const host = "Host: example.test\r\n"
	tests := []struct {
		name       string
		raw        string
		want       int
		wantClosed bool
	}{
		{"conflicting Content-Length", "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Content-Length: 5\r\nContent-Length: 45\r\n\r\nhelloGET /catalog/ HTTP/1.1\r\nHost: example.test\r\n\r\n", 400, true},
		{"Content-Length with Transfer-Encoding", "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /catalog/ HTTP/1.1\r\nHost: example.test\r\n\r\n", 403, true},
		{"unknown Transfer-Encoding", "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, true},
		{"Transfer-Encoding in HTTP/1.0", "POST /catalog/forget/ HTTP/1.0\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true},
		{"HTTP/1.1 without Host", "GET /catalog/books/ HTTP/1.1\r\n\r\n", 400, true},
		{"two Host headers", "GET /catalog/books/ HTTP/1.1\r\n" + host + "Host: evil.test\r\n\r\n", 400, true},
		{"unknown method", "FOO /catalog/ HTTP/1.1\r\n" + host + "\r\n", 400, true},
		{"garbage request line", "HELLO\r\n\r\n", 400, true},
		{"control character in a header", "GET /catalog/ HTTP/1.1\r\n" + host + "Cookie: sessionid=abc\x01def\r\n\r\n", 400, true},
		{"space before the colon", "GET /catalog/ HTTP/1.1\r\n" + host + "Content-Length : 0\r\n\r\n", 400, true},
		{"oversized headers", "GET /catalog/ HTTP/1.1\r\n" + host + "X-Padding: " + strings.Repeat("a", 20_000) + "\r\n\r\n", 431, true},
		{"declared body over the limit", "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4194304\r\n\r\n", 413, true},
		{"Expect: 100-continue with a body over the limit", "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 4194304\r\n\r\n", 413, true},
		{"chunked body over the limit", "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n4000\r\n" + strings.Repeat("a", 0x4000) + "\r\n0\r\n\r\n", 413, true},
		{"absolute URI for another host", "GET http://evil.test/catalog/books/ HTTP/1.1\r\n" + host + "\r\n", 200, false},
		{"well-formed keep-alive request", "GET /catalog/books/ HTTP/1.1\r\n" + host + "\r\n", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, closed := exchange(t, addr, tt.raw)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d\n%.300s", resp.StatusCode, tt.want, body)
			}
			if closed != tt.wantClosed {
				t.Errorf("connection closed after the answer: %v, want %v", closed, tt.wantClosed)
			}
			for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("answer lacks %s", h)
				}
			}
			if !strings.Contains(body, `class="sidebar"`) {
				t.Errorf("answer is not a page in the site's layout:\n%.300s", body)
			}
			for _, leak := range []string{"fasthttp", "buffer", "Transfer-Encoding", "Content-Length", "Invalid http method"} {
				if strings.Contains(body, leak) {
					t.Errorf("answer shows internals (%q):\n%.300s", leak, body)
				}
			}
		})
	}
	metrics := scrape(t, m)
	for _, want := range []string{
		`route="refused",status="400"`, `route="refused",status="413"`, `route="refused",status="431"`,
		`method="OTHER",route="refused",status="400"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestSlowRequestGets408 holds a request's headers back past the read
// timeout: the answer is the site's 408 page, and the connection ends.
func TestSlowRequestGets408(t *testing.T) {
	m := routes.NewMetrics()
	app := mustApp(t, routes.Deps{Metrics: m})
	app.Server().ReadTimeout = 300 * time.Millisecond // 30 s in production
	addr := listen(t, app)
	resp, body, closed := exchange(t, addr, "GET /catalog/books/ HTTP/1.1\r\nHost: example.test\r\nX-Slow: ")
	if resp.StatusCode != 408 || !closed {
		t.Errorf("status %d, closed %v; want 408 and closed\n%.300s", resp.StatusCode, closed, body)
	}
	if resp.Header.Get("Content-Security-Policy") == "" || !strings.Contains(body, `class="sidebar"`) {
		t.Errorf("408 is not the site's page with its headers:\n%v\n%.300s", resp.Header, body)
	}
	if metrics := scrape(t, m); !strings.Contains(metrics, `route="refused",status="408"`) {
		t.Error("the 408 is not in the metrics")
	}
}

// TestHostileRequestsKeepTheServerWell checks the server still answers
// normally on a fresh connection after the hostile ones.
func TestHostileRequestsKeepTheServerWell(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	addr := listen(t, app)
	for range 3 {
		exchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
	}
	resp, _, _ := exchange(t, addr, "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("/livez after hostile requests: %d", resp.StatusCode)
	}
}

// TestHeadIsGetWithoutTheBody compares HEAD's headers with GET's on every
// kind of page, the ones with forms and per-browser content included.
func TestHeadIsGetWithoutTheBody(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	b := newBrowser(t, app)
	b.visit("/catalog/") // through the cookie check
	for _, path := range []string{"/catalog/", "/catalog/books/", "/catalog/authors/?per_page=25", "/catalog/book/1",
		"/catalog/forget/", "/catalog/book/999", "/nope", "/livez"} {
		get := b.do("GET", path, nil)
		head := b.do("HEAD", path, nil)
		if head.status != get.status || head.body != "" {
			t.Errorf("HEAD %s: status %d with %d bytes of body; GET: %d", path, head.status, len(head.body), get.status)
		}
		for _, h := range []string{"Content-Length", "Content-Type", "Cache-Control", "Vary", "Content-Security-Policy"} {
			if head.header.Get(h) != get.header.Get(h) {
				t.Errorf("HEAD %s: %s %q, GET's %q", path, h, head.header.Get(h), get.header.Get(h))
			}
		}
		if n, _ := strconv.Atoi(get.header.Get("Content-Length")); n != len(get.body) {
			t.Errorf("GET %s: Content-Length %d for %d bytes", path, n, len(get.body))
		}
	}
}

// TestCachingPolicy: per-browser answers are never kept by a shared
// cache; the others may be, revalidated by ETag.
func TestCachingPolicy(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	b := newBrowser(t, app)
	b.visit("/catalog/")
	const private = "private, no-store"
	tests := []struct {
		name, method, path string
		wantCache          string
		wantVaryCookie     bool
	}{
		{"home: visit count and CSRF token", "GET", "/catalog/", private, true},
		{"book list: the session's page size", "GET", "/catalog/books/", private, true},
		{"author list: the session's page size", "GET", "/catalog/authors/", private, true},
		{"forget page: CSRF token", "GET", "/catalog/forget/", private, true},
		{"book detail: the same for everyone", "GET", "/catalog/book/1", "no-cache", false},
		{"author detail: the same for everyone", "GET", "/catalog/author/1", "no-cache", false},
		{"not found", "GET", "/catalog/book/999", "no-cache", false},
		{"root redirect", "GET", "/", "no-cache", false},
		{"POST without a token", "POST", "/catalog/forget/", private, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(tt.method, tt.path, nil)
			if got := r.header.Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control %q, want %q", got, tt.wantCache)
			}
			if got := strings.Contains(r.header.Get("Vary"), "Cookie"); got != tt.wantVaryCookie {
				t.Errorf("Vary %q; want Cookie in it: %v", r.header.Get("Vary"), tt.wantVaryCookie)
			}
		})
	}

	t.Run("any answer setting a cookie", func(t *testing.T) {
		fresh := get(t, app, "GET", "/catalog/") // the cookie check sets its test cookie
		if fresh.header.Get("Set-Cookie") == "" || fresh.header.Get("Cache-Control") != private || !strings.Contains(fresh.header.Get("Vary"), "Cookie") {
			t.Errorf("Set-Cookie %q with Cache-Control %q, Vary %q", fresh.header.Get("Set-Cookie"), fresh.header.Get("Cache-Control"), fresh.header.Get("Vary"))
		}
	})
	t.Run("static files stay immutable", func(t *testing.T) {
		m := regexp.MustCompile(`href="(/static/style\.[0-9a-f]+\.css)"`).FindStringSubmatch(b.visit("/catalog/book/1").body)
		if m == nil {
			t.Fatal("no stylesheet link")
		}
		if cc := get(t, app, "GET", m[1]).header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("stylesheet Cache-Control %q", cc)
		}
	})
	t.Run("ETag and 304", func(t *testing.T) {
		first := get(t, app, "GET", "/catalog/book/1")
		etag := first.header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag on a shared page")
		}
		b.header = http.Header{"If-None-Match": {etag}}
		defer func() { b.header = nil }()
		if r := b.do("GET", "/catalog/book/1", nil); r.status != 304 || r.body != "" {
			t.Errorf("If-None-Match with the current ETag: %d, %d bytes", r.status, len(r.body))
		}
		if r := b.do("GET", "/catalog/book/2", nil); r.status != 200 {
			t.Errorf("another page with that ETag: %d, want 200", r.status)
		}
		if r := b.do("GET", "/catalog/", nil); r.status != 200 || r.header.Get("ETag") != "" {
			t.Errorf("per-browser page: %d with ETag %q, want 200 and none", r.status, r.header.Get("ETag"))
		}
	})
}

// Test405SaysWhatIsAllowed: the Allow header lists the methods the path
// answers, from the route table.
func Test405SaysWhatIsAllowed(t *testing.T) {
	app := mustApp(t, routes.Deps{})
	tests := []struct{ method, path, want string }{
		{"GET", "/catalog/notice/dismiss", "POST"},
		{"PUT", "/catalog/forget/", "GET, HEAD, POST"},
		{"POST", "/catalog/book/1", "GET, HEAD"},
		{"DELETE", "/catalog/Books", "GET, HEAD"},
	}
	for _, tt := range tests {
		r := get(t, app, tt.method, tt.path)
		if r.status != 405 || r.header.Get("Allow") != tt.want {
			t.Errorf("%s %s: %d with Allow %q, want 405 with %q", tt.method, tt.path, r.status, r.header.Get("Allow"), tt.want)
		}
	}
}

// TestRequestIDsAreRandom: ids say nothing about the process, and no
// sender chooses one, not even a trusted proxy: ingress-nginx passes on
// the id its client sent.
func TestRequestIDsAreRandom(t *testing.T) {
	untrusting := mustApp(t, routes.Deps{})
	seen := map[string]bool{}
	for range 20 {
		id := get(t, untrusting, "GET", "/livez").header.Get("X-Request-Id")
		if len(id) < 22 || seen[id] {
			t.Fatalf("request id %q: short or repeated", id)
		}
		seen[id] = true
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	if common := commonPrefix(ids); len(common) > 4 {
		t.Errorf("20 ids share the prefix %q: a per-process part", common)
	}

	// app.Test's requests come from 0.0.0.0.
	trusting := mustApp(t, routes.Deps{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}})
	for _, tt := range []struct {
		app      *fiber.App
		keptSent bool
	}{{untrusting, false}, {trusting, false}} {
		req := httptest.NewRequest("GET", "/livez", nil)
		req.Header.Set("X-Request-Id", "chosen-by-the-sender")
		resp, err := tt.app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if kept := resp.Header.Get("X-Request-Id") == "chosen-by-the-sender"; kept != tt.keptSent {
			t.Errorf("sent id kept: %v, want %v", kept, tt.keptSent)
		}
	}
}

func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// TestForwardedProtoOnlyFromTrustedProxies: X-Forwarded-Proto: https
// turns on the CSRF check's Origin/Referer rule, so it must count only
// from a trusted proxy; from anyone else it changes nothing.
func TestForwardedProtoOnlyFromTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		origin  string
		want    int
	}{
		{"untrusted peer: header ignored, the token suffices", nil, "", 303},
		{"trusted proxy: https, so a POST without Referer is refused", []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}, "", 403},
		{"trusted proxy: https, Origin of another site", []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}, "https://other.test", 403},
		{"trusted proxy: https, Origin of the forwarded host", []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}, "https://evil.test", 303},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Behind a TLS-terminating proxy every request says https, the
			// page with the form too (its cookie's name depends on it).
			b := newBrowser(t, mustApp(t, routes.Deps{TrustedProxies: tt.trusted}))
			b.header = http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.test"}}
			token := csrfTokenIn(t, b.visit("/catalog/"))
			if tt.origin != "" {
				b.header.Set("Origin", tt.origin)
			}
			r := b.do("POST", "/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {token}})
			if r.status != tt.want {
				t.Errorf("POST with X-Forwarded-Proto: https: %d, want %d", r.status, tt.want)
			}
		})
	}
}

// TestLargeBodiesAreRefusedUnread sends 40 bodies of 4 MiB at once, as an
// attacker streams them: with the form-sized limit the server answers 413
// after the headers and reads none of them. The figure checked is every
// byte the process allocated meanwhile, an upper bound on how much its
// heap grew that no earlier test's leftovers can hide.
func TestLargeBodiesAreRefusedUnread(t *testing.T) {
	const clients, bodySize, maxGrowth = 40, 4 << 20, 32 << 20
	run := func(t *testing.T, limit int) (allocated uint64, outcomes map[int]int) {
		app := mustApp(t, routes.Deps{BodyLimit: limit})
		addr := listen(t, app)
		chunk := make([]byte, 64<<10)
		runtime.GC()
		before := allocatedBytes()
		outcomes = map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				var writer sync.WaitGroup
				writer.Go(func() {
					_, err := fmt.Fprintf(conn, "POST /catalog/forget/ HTTP/1.1\r\nHost: example.test\r\n"+
						"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", bodySize)
					for sent := 0; err == nil && sent < bodySize; sent += len(chunk) {
						_, err = conn.Write(chunk)
					}
				})
				status := 0 // the server reset the connection before the answer arrived
				if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
					status = resp.StatusCode
				}
				conn.Close()
				writer.Wait()
				mu.Lock()
				outcomes[status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return allocatedBytes() - before, outcomes
	}

	allocated, outcomes := run(t, 0) // routes' default, as config's: 8 KiB
	t.Logf("8 KiB limit: %d × 4 MiB bodies made the process allocate %.1f MiB; answers %v (0: reset before the answer was read)",
		clients, float64(allocated)/(1<<20), outcomes)
	if allocated > maxGrowth {
		t.Errorf("allocated %.1f MiB, want at most %d MiB", float64(allocated)/(1<<20), maxGrowth>>20)
	}
	if outcomes[413] == 0 || outcomes[413]+outcomes[0] != clients {
		t.Errorf("answers %v, want 413s (or resets) only", outcomes)
	}

	// The measure sees bodies that are read: with Fiber's 4 MiB default
	// the same load allocates at least the bodies.
	allocated, outcomes = run(t, 4<<20)
	t.Logf("4 MiB limit (Fiber's default): %.1f MiB allocated; answers %v", float64(allocated)/(1<<20), outcomes)
	if allocated < clients*bodySize {
		t.Errorf("with a 4 MiB limit only %.1f MiB were allocated: the measure misses read bodies", float64(allocated)/(1<<20))
	}
}

// allocatedBytes is every byte the process has allocated on the heap.
func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// requestIDPattern is an id from crypto/rand.Text: 26 base32 characters.
var requestIDPattern = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// TestRefusedAnswersCarryARequestID: an answer made before routing (a
// request fasthttp could not read, or Fiber would not route) has an id
// as a routed one does, fresh for each, so a user's report of one can be
// found: at debug level each is a log line with its id.
func TestRefusedAnswersCarryARequestID(t *testing.T) {
	logs := new(logRecorder)
	app := mustApp(t, routes.Deps{Logger: slog.New(logs)})
	addr := listen(t, app)
	slow := mustApp(t, routes.Deps{Logger: slog.New(logs)})
	slow.Server().ReadTimeout = 300 * time.Millisecond
	slowAddr := listen(t, slow)
	const host = "Host: example.test\r\n"
	tests := []struct {
		name, addr, raw string
		want            int
	}{
		{"malformed request line", addr, "HELLO\r\n\r\n", 400},
		{"malformed request line again", addr, "HELLO\r\n\r\n", 400},
		{"oversized headers", addr, "GET /catalog/ HTTP/1.1\r\n" + host + "X-Padding: " + strings.Repeat("a", 20_000) + "\r\n\r\n", 431},
		{"unknown method", addr, "FOO /catalog/ HTTP/1.1\r\n" + host + "\r\n", 400},
		{"body over the limit", addr, "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4194304\r\n\r\n", 413},
		{"Expect: 100-continue refused", addr, "POST /catalog/forget/ HTTP/1.1\r\n" + host +
			"Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 4194304\r\n\r\n", 413},
		{"headers too slow", slowAddr, "GET /catalog/ HTTP/1.1\r\n" + host + "X-Slow: ", 408},
		{"a routed answer", addr, "GET /livez HTTP/1.1\r\n" + host + "X-Request-Id: chosen-by-the-sender\r\nConnection: close\r\n\r\n", 200},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		resp, body, _ := exchange(t, tt.addr, tt.raw)
		id := resp.Header.Get("X-Request-Id")
		switch {
		case resp.StatusCode != tt.want:
			t.Errorf("%s: status %d, want %d\n%.300s", tt.name, resp.StatusCode, tt.want, body)
		case !requestIDPattern.MatchString(id):
			t.Errorf("%s: X-Request-Id %q, want 26 base32 characters", tt.name, id)
		case seen[id] != "":
			t.Errorf("%s: X-Request-Id %s, the same as %s's", tt.name, id, seen[id])
		case tt.want != 200 && !logs.has("request refused", "request_id", id):
			t.Errorf("%s: no debug line with its id %s", tt.name, id)
		}
		seen[id] = tt.name
	}
}

// logRecorder is a slog.Handler keeping the records it is given.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// attr returns the attribute key of the last record whose message is msg.
func (r *logRecorder) attr(msg, key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	value := ""
	for _, rec := range r.records {
		if rec.Message != msg {
			continue
		}
		value = ""
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				value = a.Value.String()
			}
			return true
		})
	}
	return value
}

// has tells whether a record with message msg has key = value.
func (r *logRecorder) has(msg, key, value string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		found := false
		rec.Attrs(func(a slog.Attr) bool {
			found = found || (a.Key == key && a.Value.String() == value)
			return !found
		})
		if rec.Message == msg && found {
			return true
		}
	}
	return false
}

// lines returns the records at level or above whose message is msg ("":
// any), with each one's "count" attribute.
func (r *logRecorder) lines(level slog.Level, msg string) (n int, counts int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.Level < level || (msg != "" && rec.Message != msg) {
			continue
		}
		n++
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "count" {
				counts += a.Value.Int64()
			}
			return true
		})
	}
	return n, counts
}

// TestOverCapRefusalsAreCountedNotLoggedEach refuses requests as app's
// connection cap does: each is the site's 503 with its own id and is
// counted, and the log gets a line a second with their number, not a line
// each.
func TestOverCapRefusalsAreCountedNotLoggedEach(t *testing.T) {
	const refusals = 500
	m := routes.NewMetrics()
	logs := new(logRecorder)
	app := mustApp(t, routes.Deps{Metrics: m, Logger: slog.New(logs)})
	srv := app.Server()
	srv.Handler = func(ctx *fasthttp.RequestCtx) { srv.ErrorHandler(ctx, routes.ErrOverConnectionCap) } // as app's cap
	start := time.Now()
	ids := map[string]bool{}
	for range refusals {
		r := get(t, app, "GET", "/catalog/")
		id := r.header.Get("X-Request-Id")
		if r.status != 503 || r.header.Get("Retry-After") == "" || ids[id] || !requestIDPattern.MatchString(id) {
			t.Fatalf("over the cap: %d, Retry-After %q, X-Request-Id %q (repeated: %v)", r.status, r.header.Get("Retry-After"), id, ids[id])
		}
		ids[id] = true
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines, counted := logs.lines(slog.LevelWarn, "connections over the cap refused")
		if counted == refusals {
			if most := 2 + int(time.Since(start)/time.Second); lines > most {
				t.Errorf("%d refusals in %v took %d log lines, want at most %d", refusals, time.Since(start), lines, most)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log counts %d of %d refusals in %d lines", counted, refusals, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if errors, _ := logs.lines(slog.LevelError, ""); errors > 0 {
		t.Errorf("%d error lines for over-cap refusals", errors)
	}
	if !strings.Contains(scrape(t, m), "locallibrary_http_over_cap_connections_total 500\n") {
		t.Error("the metrics do not count the 500 refusals")
	}
}

// TestProxyRequestIDIsLoggedBeside: a trusted proxy's X-Request-Id, if it
// looks like one, is in the log lines beside the replica's own id, so a
// request can be found in both logs; anyone else's is not.
func TestProxyRequestIDIsLoggedBeside(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")} // app.Test's peer
	tests := []struct {
		name    string
		trusted []netip.Prefix
		sent    string
		want    string // proxy_request_id logged; "" none
	}{
		{"trusted proxy", trusted, "5e1f0c2ab4d34f6e9a8b7c6d5e4f3a21", "5e1f0c2ab4d34f6e9a8b7c6d5e4f3a21"},
		{"trusted proxy, a UUID", trusted, "0b7e3c1e-3f7a-4c39-9a3e-1c2d3e4f5a6b", "0b7e3c1e-3f7a-4c39-9a3e-1c2d3e4f5a6b"},
		{"trusted proxy, not an id", trusted, `x" injected=1`, ""},
		{"trusted proxy, too long", trusted, strings.Repeat("a", 200), ""},
		{"untrusted peer", nil, "5e1f0c2ab4d34f6e9a8b7c6d5e4f3a21", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(logRecorder)
			app := mustApp(t, routes.Deps{TrustedProxies: tt.trusted, Logger: slog.New(logs),
				Catalog: &fakeCatalog{err: errors.New("boom")}})
			req := httptest.NewRequest("GET", "/catalog/book/1", nil)
			req.Header.Set("X-Request-Id", tt.sent)
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			own := resp.Header.Get("X-Request-Id")
			if !requestIDPattern.MatchString(own) {
				t.Fatalf("X-Request-Id %q: not the replica's own", own)
			}
			got, ids := logs.attr("request failed", "proxy_request_id"), logs.attr("request failed", "request_id")
			if got != tt.want || ids != own {
				t.Errorf("logged request_id %q, proxy_request_id %q; want %q and %q", ids, got, own, tt.want)
			}
		})
	}
}

// TestAnOutageIsLoggedOnceASecondNotOnceAPage: while MySQL is down every
// uncached page is a 503; the log gets the first at once, then a line a
// second with how many and the last error, at error level.
func TestAnOutageIsLoggedOnceASecondNotOnceAPage(t *testing.T) {
	const pages = 300
	logs := new(logRecorder)
	app := mustApp(t, routes.Deps{Logger: slog.New(logs), Catalog: &fakeCatalog{books: 50, authors: 5, err: driver.ErrBadConn}})
	start := time.Now()
	for i := range pages {
		if r := get(t, app, "GET", fmt.Sprintf("/catalog/book/%d", i+1)); r.status != 503 {
			t.Fatalf("book %d while the catalog is down: %d, want 503", i+1, r.status)
		}
	}
	const msg = "catalog unavailable: pages answered 503"
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines, counted := logs.lines(slog.LevelError, msg)
		if counted == pages {
			if most := 2 + int(time.Since(start)/time.Second); lines > most {
				t.Errorf("%d pages in %v took %d log lines, want at most %d", pages, time.Since(start), lines, most)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log counts %d of %d pages in %d lines", counted, pages, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if all, _ := logs.lines(slog.LevelError, ""); all > 2+int(time.Since(start)/time.Second) {
		t.Errorf("%d error lines in all for %d pages of an outage", all, pages)
	}
}
