package routes_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/routes"
)

// slowListsCatalog answers as fakeCatalog after a pause, so a page cache's
// background refresh renders when the request that started it is over and
// Fiber has handed its buffers to the next one.
type slowListsCatalog struct {
	*fakeCatalog
	pause time.Duration
}

func (s slowListsCatalog) Books(ctx context.Context, limit, offset int) ([]repository.BookSummary, error) {
	time.Sleep(s.pause)
	return s.fakeCatalog.Books(ctx, limit, offset)
}

func (s slowListsCatalog) Authors(ctx context.Context, limit, offset int) ([]repository.Author, error) {
	time.Sleep(s.pause)
	return s.fakeCatalog.Authors(ctx, limit, offset)
}

var pagerLink = regexp.MustCompile(`rel="(?:prev|next)" href="([^"]*)"`)

// TestCachedPagesOwnNothingOfTheirRequest serves many concurrent requests
// of different paths over keep-alive connections while the list pages
// refresh in the background every 100 ms, and checks every page served
// against the same page rendered by a quiet replica with no cache: a
// loader that kept a view into its request (its path, its query) would
// render another request's bytes into a page everyone then gets.
func TestCachedPagesOwnNothingOfTheirRequest(t *testing.T) {
	catalog := &fakeCatalog{books: 300, authors: 300}
	busy := mustApp(t, routes.Deps{Catalog: slowListsCatalog{catalog, time.Millisecond},
		PageCacheBytes: 4 << 20, PageCacheTTL: 200 * time.Millisecond})
	quiet := mustApp(t, routes.Deps{Catalog: catalog, PageCacheBytes: -1})

	// The pages checked, and others (longer paths, 404s) whose bytes would
	// land in a reused buffer.
	var lists, details []string
	for n := 1; n <= 12; n++ {
		for _, l := range []string{"/catalog/books/", "/catalog/authors/"} {
			lists = append(lists, fmt.Sprintf("%s?page=%d", l, n), fmt.Sprintf("%s?per_page=25&page=%d", l, n))
		}
		details = append(details, fmt.Sprintf("/catalog/book/%d", n), fmt.Sprintf("/catalog/author/%d", n+100))
	}
	noise := []string{"/catalog/book/999999999?overwrite=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "/catalog/author/77777777",
		"/catalog/nothing/here/at/all/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "/static/none.css"}
	want := map[string]string{}
	for _, p := range append(append([]string(nil), lists...), details...) {
		r := get(t, quiet, "GET", p)
		if r.status != 200 {
			t.Fatalf("quiet %s: %d", p, r.status)
		}
		want[p] = r.body
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = busy.Listener(ln) }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()

	var (
		mu       sync.Mutex
		problems []string
		checked  int
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; time.Now().Before(deadline); i++ {
				var p string
				switch i % 4 {
				case 0, 1:
					p = lists[(i*7+w)%len(lists)]
				case 2:
					p = details[(i*5+w)%len(details)]
				default:
					p = noise[(i+w)%len(noise)]
				}
				resp, err := client.Get(base + p)
				if err != nil {
					report("%s: %v", p, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				expected, ok := want[p]
				if !ok {
					continue
				}
				mu.Lock()
				checked++
				mu.Unlock()
				if strings.Contains(p, "?") {
					list, _, _ := strings.Cut(p, "?")
					for _, m := range pagerLink.FindAllStringSubmatch(string(body), -1) {
						if !strings.HasPrefix(m[1], list+"?page=") {
							report("%s links to %q", p, m[1])
						}
					}
				}
				if resp.StatusCode != 200 || string(body) != expected {
					report("%s: %d, not the page the quiet replica renders (%d bytes, want %d)", p, resp.StatusCode, len(body), len(expected))
				}
			}
		})
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d pages checked; wrong ones:\n%s", checked, strings.Join(problems, "\n"))
	}
	if checked < 200 {
		t.Fatalf("only %d pages checked: too few to say", checked)
	}
	t.Logf("%d pages checked", checked)
}
