//go:build !noembeddeddb

package app_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// request sends a GET of path on c and reads the answer.
func request(t *testing.T, c net.Conn, path string) (*http.Response, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: no answer: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestConnectionCap: with LOCALLIBRARY_HTTP_MAX_CONNS connections open,
// the next one is answered with the site's 503 page and closed, and
// thousands more cost the replica no more goroutines or heap than a few.
func TestConnectionCap(t *testing.T) {
	const limit = 20
	s := startService(t, map[string]string{"LOCALLIBRARY_HTTP_MAX_CONNS": "20"})
	addr := strings.TrimPrefix(s.url, "http://")
	client.CloseIdleConnections() // startService's, which count too

	// Keep-alive connections, left open and idle, until one is refused.
	var resp *http.Response
	var body string
	open := 0
	for ; open <= limit; open++ {
		if resp, body = request(t, dial(t, addr), "/catalog/books/"); resp.StatusCode != http.StatusOK {
			break
		}
	}
	if open > limit || open < limit-2 {
		t.Errorf("%d connections were served before one was refused; the cap is %d", open, limit)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the cap: status %d, Connection close %v, Retry-After %q; want 503, closed, a Retry-After",
			resp.StatusCode, resp.Close, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(body, `<nav class="sidebar"`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("over the cap: not the site's page with its headers:\n%s", body)
	}

	// Thousands of idle connections past the cap: the few spare ones hold
	// a goroutine each for 2 s at most, the rest are refused at once.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	const flood = 2000
	conns := make([]net.Conn, 0, flood)
	for range flood {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	// The last one is answered (or cut) only once the server has accepted
	// every one before it.
	_ = conns[flood-1].SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conns[flood-1], "GET /catalog/ HTTP/1.1\r\nHost: x\r\n\r\n")
	_, _ = io.ReadAll(conns[flood-1])

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := runtime.NumGoroutine() - goroutines
	heap := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d idle connections past the cap: %+d goroutines, %+.1f MiB heap in use", flood, grown, float64(heap)/(1<<20))
	if grown > 16+20 {
		t.Errorf("%d idle connections past the cap added %d goroutines; the spare slots are 16", flood, grown)
	}
	if heap > 4<<20 {
		t.Errorf("%d idle connections past the cap added %.1f MiB of heap", flood, float64(heap)/(1<<20))
	}
}

// TestOverCapAnswersCarryARequestID fills the cap and its spare slots:
// the answer read from a spare slot and the ones given at once beyond
// them are the site's 503 page, each with an id of its own, and none is
// a log line of its own.
func TestOverCapAnswersCarryARequestID(t *testing.T) {
	const limit, spare = 20, 16
	s := startService(t, map[string]string{"LOCALLIBRARY_HTTP_MAX_CONNS": "20", "LOCALLIBRARY_LOG_LEVEL": "warn"})
	addr := strings.TrimPrefix(s.url, "http://")
	client.CloseIdleConnections() // startService's, which count too
	for range limit {
		if resp, _ := request(t, dial(t, addr), "/livez"); resp.StatusCode != http.StatusOK {
			t.Fatalf("under the cap: %d", resp.StatusCode)
		}
	}
	ids := map[string]bool{}
	check := func(what string, resp *http.Response, body string) {
		t.Helper()
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `<nav class="sidebar"`) {
			t.Errorf("%s: %d, Retry-After %q; want the site's 503 page:\n%.300s", what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if !requestIDPattern.MatchString(id) || ids[id] {
			t.Errorf("%s: X-Request-Id %q: malformed or repeated", what, id)
		}
		ids[id] = true
	}
	resp, body := request(t, dial(t, addr), "/catalog/")
	check("read from a spare slot", resp, body)

	// The spare slots held by connections that send nothing (for 2 s);
	// the next ones are answered as they are accepted, unread.
	for range spare {
		dial(t, addr)
	}
	for i := range 3 {
		c := dial(t, addr)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("beyond the spare slots, connection %d: no answer: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		check("beyond the spare slots", resp, string(b))
	}
	if lines := strings.Count(s.logs.String(), `"msg":"request failed"`); lines > 0 {
		t.Errorf("over-cap answers logged one by one (%d lines):\n%s", lines, s.logs)
	}
}

var requestIDPattern = regexp.MustCompile(`^[A-Z2-7]{26}$`)
