package routes_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

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
