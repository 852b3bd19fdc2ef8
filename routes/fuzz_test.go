package routes_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/routes"
)

func TestOversizedHeadersGet431(t *testing.T) {
	// Over a real socket: app.Test reports the read error itself instead
	// of the response a browser gets.
	app := mustApp(t, routes.Deps{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/catalog/", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 20_000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Fatalf("20 KB header: %d, want 431", resp.StatusCode)
	}
	if strings.Contains(string(body), "small") || strings.Contains(string(body), "buffer") {
		t.Errorf("431 page shows internals:\n%s", body)
	}
}

// FuzzCatalogRequest sends any path and query under /catalog/: the site
// answers, and never with a 5xx.
func FuzzCatalogRequest(f *testing.F) {
	for _, seed := range []string{
		"books/?page=2", "books/?page=-1", "books/?page=99999999999999999999", "books/?page=1&page=2",
		"authors/?per_page=25&page=last", "book/1", "book/-1", "book/1%00", "book/%ff", "author/9223372036854775808",
		"../../etc/passwd", "static/..%2f..%2fgo.mod", "?cookies=check", "forget/", "book/1?page=x",
	} {
		f.Add(seed)
	}
	app := mustApp(f, routes.Deps{})
	f.Fuzz(func(t *testing.T, rest string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.RequestURI = "/catalog/" + rest
		req.URL.Opaque = "/catalog/" + rest
		req.Header.Set("Cookie", session.CookieName+"=AAAAAAAAAAAAAAAAAAAAAA")
		resp, err := app.Test(req, 10_000)
		if err != nil {
			return // not a request the client library could send
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("GET /catalog/%s: status %d", rest, resp.StatusCode)
		}
	})
}
