package local

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// visitsRe finds the home page's visit count.
var visitsRe = regexp.MustCompile(`You have visited this page (\d+) times?\.`)

// visitsUnavailable is what the home page says instead of the count when
// memcached did not answer.
const visitsUnavailable = "Your visit count is unavailable right now."

// Each page the browsers load has a heading no other page has: a body
// without it is another page's (or a broken one).
const (
	homeHeading     = "<h1>Local Library Home</h1>"
	bookListHeading = "<h1>Book List</h1>"
	bookHeading     = "<h1>Title: "
)

// traffic counts every HTTP exchange of a group of browsers, redirects
// included, and the failed ones: a transport error or a status of 400 or
// more. It also counts 200s whose body is not the page asked for.
type traffic struct {
	requests  atomic.Int64
	failures  atomic.Int64
	wrongPage atomic.Int64

	mu      sync.Mutex
	samples []string // the first few problems, for the log
}

func (tr *traffic) note(what string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.samples) < 10 {
		tr.samples = append(tr.samples, time.Now().Format("15:04:05.000 ")+what)
	}
}

// countingTransport is the browsers' view of the site: what they asked,
// what failed.
type countingTransport struct {
	next    http.RoundTripper
	traffic *traffic
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	c.traffic.requests.Add(1)
	switch {
	case err != nil:
		c.traffic.failures.Add(1)
		c.traffic.note(fmt.Sprintf("GET %s: %v", r.URL.RequestURI(), err))
	case resp.StatusCode >= 400:
		c.traffic.failures.Add(1)
		c.traffic.note(fmt.Sprintf("GET %s: %s from %s", r.URL.RequestURI(), resp.Status, resp.Header.Get("X-Upstream")))
	}
	return resp, err
}

// browser is one visitor: its own cookie jar, one request at a time, and
// what it knows of its visit count.
type browser struct {
	tb      *testkit.Browser
	traffic *traffic

	homeOK      int    // GET /catalog/ answered 200 with a count
	lastCount   uint64 // the count the last such page showed
	outOfOrder  int    // pages whose count was not the previous one + 1
	noCount     int    // home pages (200) that showed no count
	homeFailure int    // home page loads that failed
	// unavailableAt are the times of the pages in noCount that said the
	// count is unavailable.
	unavailableAt []time.Time
	// restartsExpected: a count out of order is not noted as a problem
	// (after the resize, where moved counts start again at 1).
	restartsExpected bool

	recent [4]string // the last pages loaded, for the log
	loads  int
}

// newBrowser makes a browser. A nil transport gives it connections of its
// own, as a real browser has.
func newBrowser(base *url.URL, tr *traffic, transport http.RoundTripper) *browser {
	if transport == nil {
		transport = &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 20 * time.Second}
	}
	return &browser{traffic: tr, tb: testkit.NewBrowser(base.String(), countingTransport{next: transport, traffic: tr})}
}

// countInto counts the browser's requests in tr from now on.
func (b *browser) countInto(tr *traffic) {
	ct := b.tb.Client.Transport.(countingTransport)
	ct.traffic = tr
	b.tb.Client.Transport = ct
	b.traffic = tr
}

// get loads a page, following redirects, and returns the final status (0
// on a transport error) and body. A 200 whose body lacks heading is
// counted as a wrong page.
func (b *browser) get(path, heading string) (int, string) {
	pg, err := b.tb.Get(context.Background(), path)
	if err != nil {
		b.remember(path, err.Error())
		return 0, ""
	}
	upstream := pg.Header.Get("X-Upstream")
	b.remember(path, fmt.Sprintf("%d from %s", pg.Status, upstream))
	if pg.Status == http.StatusOK && !strings.Contains(pg.Body, heading) {
		b.traffic.wrongPage.Add(1)
		b.traffic.note(fmt.Sprintf("GET %s: 200 from %s without %q, a page titled %q", path, upstream, heading, titleOf(pg.Body)))
	}
	return pg.Status, pg.Body
}

// titleOf is the text of a page's <title>.
func titleOf(body string) string {
	_, rest, _ := strings.Cut(body, "<title>")
	title, _, _ := strings.Cut(rest, "</title>")
	return title
}

func (b *browser) remember(path, outcome string) {
	b.recent[b.loads%len(b.recent)] = time.Now().Format("15:04:05.000 ") + path + " " + outcome
	b.loads++
}

// history is the last pages loaded, oldest first.
func (b *browser) history() string {
	var h []string
	for i := range len(b.recent) {
		if s := b.recent[(b.loads+i)%len(b.recent)]; s != "" {
			h = append(h, s)
		}
	}
	return strings.Join(h, "; ")
}

// home loads GET /catalog/ (the first time through the cookie check's
// redirects) and checks the count is one more than the last.
func (b *browser) home() {
	status, body := b.get("/catalog/", homeHeading)
	if status != http.StatusOK {
		b.homeFailure++
		return
	}
	m := visitsRe.FindStringSubmatch(body)
	if m == nil {
		b.noCount++
		switch {
		case strings.Contains(body, visitsUnavailable):
			b.unavailableAt = append(b.unavailableAt, time.Now()) // the caller judges how many are too many
		case strings.Contains(body, homeHeading):
			i := strings.Index(body, `<div class="session-box">`)
			b.traffic.note(fmt.Sprintf("a home page without a count: %.120q", body[max(i, 0):]))
		}
		return
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	if n != b.lastCount+1 {
		b.outOfOrder++
		if !b.restartsExpected {
			b.traffic.note(fmt.Sprintf("count %d after %d: %s", n, b.lastCount, b.history()))
		}
	}
	b.homeOK++
	b.lastCount = n
}

// sessionID is the browser's session cookie, "" if it has none.
func (b *browser) sessionID() string { return b.tb.Jar.Value("sessionid") }

// browse loads pages until stop is closed: mostly the home page, some list
// and detail pages, a short random pause between them. A request under way
// when stop closes is finished, never cancelled.
func (b *browser) browse(rng *rand.Rand, stop <-chan struct{}, books, pages int) {
	b.home()
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-stop:
			return
		case <-pause.C:
		}
		switch r := rng.IntN(100); {
		case r < 70:
			b.home()
		case r < 85:
			b.get(fmt.Sprintf("/catalog/books/?page=%d", 1+rng.IntN(pages)), bookListHeading)
		default:
			b.get(fmt.Sprintf("/catalog/book/%d", 1+rng.IntN(books)), bookHeading)
		}
		pause.Reset(thinkMin + time.Duration(rng.Int64N(int64(thinkMax-thinkMin))))
	}
}

// load is a crowd of browsers browsing until stopped.
type load struct {
	browsers []*browser
	stop     chan struct{}
	wg       sync.WaitGroup
	started  time.Time
}

func startLoad(base *url.URL, tr *traffic, n, books, pages int) *load {
	l := &load{stop: make(chan struct{}), started: time.Now()}
	for i := range n {
		b := newBrowser(base, tr, nil)
		l.browsers = append(l.browsers, b)
		rng := rand.New(rand.NewPCG(1, uint64(i)))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			b.browse(rng, l.stop, books, pages)
		}()
	}
	return l
}

// end stops the browsers and waits for their last requests.
func (l *load) end() time.Duration {
	close(l.stop)
	l.wg.Wait()
	return time.Since(l.started)
}

// homeLoad has each browser load the home page back to back, one request
// in flight per browser, until end.
func homeLoad(browsers []*browser) *load {
	l := &load{browsers: browsers, stop: make(chan struct{}), started: time.Now()}
	for _, b := range browsers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				b.home()
			}
		})
	}
	return l
}

// returningBrowsers makes n browsers, each with a session made through the
// cookie test and the count 1 it showed, its requests counted in tr.
func returningBrowsers(t *testing.T, base *url.URL, tr *traffic, n int) []*browser {
	t.Helper()
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = newBrowser(base, tr, nil)
	}
	testkit.Each(context.Background(), n, 32, func(i int) { browsers[i].home() })
	for i, b := range browsers {
		if b.homeOK != 1 || b.lastCount != 1 || b.sessionID() == "" {
			t.Fatalf("browser %d's first visit: %d home pages with a count, count %d, session %q; problems: %q",
				i, b.homeOK, b.lastCount, b.sessionID(), tr.samples)
		}
	}
	return browsers
}
