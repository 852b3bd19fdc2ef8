package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// browser is one returning visitor: its cookies and what it was told. A
// browser is used by one worker at a time (it is taken from and given back
// to a channel), so its fields need no lock, and its home-page visits are
// sequential: each count it is shown must be the previous one plus one.
type browser struct {
	jar    testkit.Jar
	cookie string // the Cookie header it sends
	addr   string // its address, sent as X-Forwarded-For (the soak is its load balancer)

	home        int64  // soak home pages answered 200 with a count
	unavailable int64  // home pages saying the count is unavailable
	failedHome  int64  // home requests that got no page (error, timeout, non-200)
	last        uint64 // the last count it was shown
	uncertain   bool   // the last home request may or may not have been counted
	outOfOrder  int64  // counts that were not last+1 (or, when uncertain, went backwards)
	final       uint64 // the count shown by the final read
	finalErr    bool   // no final read showed a count
	finalTries  int    // final reads that said the count is unavailable
}

// keep updates the jar from the response's Set-Cookie headers, as a
// browser would, and reports whether an existing sessionid changed.
func (b *browser) keep(resp *fasthttp.Response) (sessionChanged bool) {
	session := b.jar.Value("sessionid")
	changed := false
	resp.Header.VisitAllCookie(func(_, raw []byte) {
		if _, ch := b.jar.Keep(string(raw)); ch {
			changed = true
		}
	})
	if !changed {
		return false
	}
	// Every page it asks for is below /catalog/ (or / itself, which only
	// redirects): one header serves them all.
	b.cookie = b.jar.Header("/catalog/", false)
	return session != "" && b.jar.Value("sessionid") != session
}

func (b *browser) has(name string) bool { return b.jar.Value(name) != "" }

var (
	visitsPrefix    = []byte("You have visited this page ")
	visitsUnknown   = []byte("Your visit count is unavailable right now.")
	bookListHeading = []byte("<h1>Book List</h1>")
	authorsHeading  = []byte("<h1>Author List</h1>")
)

// visitCount reads the home page's count; known is false when the page
// says it is unavailable, err when the page says neither.
func visitCount(body []byte) (count uint64, known bool, err error) {
	_, rest, found := bytes.Cut(body, visitsPrefix)
	if !found {
		if bytes.Contains(body, visitsUnknown) {
			return 0, false, nil
		}
		return 0, false, errors.New("home page without a visit sentence")
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("home page visit count %q: %w", rest[:min(len(rest), 20)], err)
	}
	return n, true, nil
}

// tally is what all workers saw, updated atomically.
type tally struct {
	requests    atomic.Int64
	home        atomic.Int64
	errors      atomic.Int64
	unavailable atomic.Int64
	outOfOrder  atomic.Int64
	newSession  atomic.Int64 // a returning browser was given a new sessionid

	// unavailable pages by phase; the load's are the rest
	setupUnavailable, finalUnavailable atomic.Int64

	mu       sync.Mutex
	kinds    map[string]int64 // error kind → count
	examples []string         // the first few errors, in full
}

// fail records an error; kinds are short and few ("home: timeout").
func (t *tally) fail(kind, detail string) {
	t.errors.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = map[string]int64{}
	}
	if _, ok := t.kinds[kind]; !ok && len(t.kinds) >= 40 {
		kind = "other"
	}
	t.kinds[kind]++
	if len(t.examples) < 10 {
		t.examples = append(t.examples, time.Now().Format("15:04:05.000")+" "+kind+": "+detail)
	}
}

func (t *tally) kindsCopy() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.kinds))
	for k, v := range t.kinds {
		out[k] = v
	}
	return out
}

// errKind names a transport error briefly.
func errKind(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection closed"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connection"
	default:
		return "transport error"
	}
}

// loader sends the requests.
type loader struct {
	client  *fasthttp.HostClient
	base    string // http://addr
	timeout time.Duration
	catalog catalog
	tally   *tally
}

func newClient(addr string, conns int, timeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                     addr,
		MaxConns:                 conns,
		MaxConnWaitTimeout:       timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
		// No retries: a retried GET /catalog/ might count a visit twice,
		// and a retry would hide the error it retries.
		MaxIdemponentCallAttempts: 1,
		RetryIf:                   func(*fasthttp.Request) bool { return false },
	}
}

func (l *loader) get(req *fasthttp.Request, resp *fasthttp.Response, path string, b *browser) error {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(l.base + path)
	if b.cookie != "" {
		req.Header.Set("Cookie", b.cookie)
	}
	if b.addr != "" {
		req.Header.Set("X-Forwarded-For", b.addr)
	}
	return l.client.DoTimeout(req, resp, l.timeout)
}

// firstVisit takes a new browser through the cookie check to its first
// counted visit: / → 302 /catalog/ → 302 ?cookies=check → 302 /catalog/ → 200 "1 time".
func (l *loader) firstVisit(b *browser, req *fasthttp.Request, resp *fasthttp.Response) (string, error) {
	steps := []struct {
		path, location string
		status         int
	}{
		{"/", "/catalog/", fasthttp.StatusFound},
		{"/catalog/", "/catalog/?cookies=check", fasthttp.StatusFound},
		{"/catalog/?cookies=check", "/catalog/", fasthttp.StatusFound},
		{"/catalog/", "", fasthttp.StatusOK},
	}
	for _, s := range steps {
		if err := l.get(req, resp, s.path, b); err != nil {
			return "first visit: " + errKind(err), fmt.Errorf("GET %s: %w", s.path, err)
		}
		b.keep(resp)
		if got := resp.StatusCode(); got != s.status {
			return "first visit: status " + strconv.Itoa(got), fmt.Errorf("GET %s: status %d, want %d", s.path, got, s.status)
		}
		if s.location != "" {
			loc := strings.TrimPrefix(string(resp.Header.Peek("Location")), l.base)
			if loc != s.location {
				return "first visit: wrong redirect", fmt.Errorf("GET %s: Location %q, want %q", s.path, loc, s.location)
			}
		}
	}
	n, known, err := visitCount(resp.Body())
	switch {
	case err != nil:
		return "first visit: wrong page", err
	case !known:
		return "", errCountUnavailable
	case n != 1:
		return "first visit: count not 1", fmt.Errorf("first home page counts %d visits", n)
	case !b.has("sessionid"):
		return "first visit: no sessionid", errors.New("no sessionid cookie after the first home page")
	}
	b.last = 1
	return "", nil
}

// errCountUnavailable is a first visit whose page said the count is
// unavailable: not an error page, but the browser's count is unknown.
var errCountUnavailable = errors.New("first home page says the visit count is unavailable")

// createBrowsers makes n browsers with `conns` at once. A browser whose
// first visit went wrong is counted (as an error, or as an unavailable
// page) and replaced by a new one, up to three tries per browser; the
// ones still missing are left out.
func (l *loader) createBrowsers(ctx context.Context, n, conns int) []*browser {
	all := make([]*browser, n)
	eachIndex(ctx, n, conns, func(i int, req *fasthttp.Request, resp *fasthttp.Response) {
		for try := 0; try < 3 && ctx.Err() == nil; try++ {
			b := &browser{addr: browserAddr(i)}
			kind, err := l.firstVisit(b, req, resp)
			switch {
			case err == errCountUnavailable:
				l.tally.unavailable.Add(1)
				l.tally.setupUnavailable.Add(1)
				continue
			case err != nil:
				l.tally.fail(kind, err.Error())
				continue
			}
			all[i] = b
			break
		}
	})
	made := all[:0]
	for _, b := range all {
		if b != nil {
			made = append(made, b)
		}
	}
	return made
}

type pageKind int

const (
	homePage pageKind = iota
	bookListPage
	authorListPage
	bookDetailPage
)

var kindNames = [...]string{"home", "book list", "author list", "book detail"}

// visit makes one request for b: the home page 80% of the time, else a
// book list page (10%), the author list (5%) or a book (5%), and checks
// that the answer is the page asked for.
func (l *loader) visit(b *browser, rng *rand.Rand, req *fasthttp.Request, resp *fasthttp.Response, h *histogram) {
	var (
		kind pageKind
		path string
		want []byte // on the page, besides the checks below
	)
	switch r := rng.IntN(100); {
	case r < 80:
		kind, path = homePage, "/catalog/"
	case r < 90:
		page := 1 + rng.IntN(l.catalog.bookPages)
		kind, path, want = bookListPage, "/catalog/books/?page="+strconv.Itoa(page), bookListHeading
		if l.catalog.bookPages > 1 {
			want = []byte("Page " + strconv.Itoa(page) + " of ")
		}
	case r < 95:
		kind, path, want = authorListPage, "/catalog/authors/", authorsHeading
	default:
		book := l.catalog.books[rng.IntN(len(l.catalog.books))]
		kind, path, want = bookDetailPage, "/catalog/book/"+strconv.FormatInt(book.id, 10), book.heading
	}
	name := kindNames[kind]
	start := time.Now()
	err := l.get(req, resp, path, b)
	h.add(time.Since(start))
	l.tally.requests.Add(1)
	if kind == homePage {
		l.tally.home.Add(1)
	}
	failed := func(what, detail string) {
		l.tally.fail(name+": "+what, "GET "+path+": "+detail)
		if kind == homePage {
			b.failedHome++
			b.uncertain = true
		}
	}
	if err != nil {
		failed(errKind(err), err.Error())
		return
	}
	if b.keep(resp) {
		l.tally.newSession.Add(1)
	}
	if status := resp.StatusCode(); status != fasthttp.StatusOK {
		failed("status "+strconv.Itoa(status), "status "+strconv.Itoa(status))
		return
	}
	body := resp.Body()
	if kind != homePage {
		if !bytes.Contains(body, want) {
			failed("wrong page", fmt.Sprintf("200 without %q", want))
		}
		return
	}
	n, known, err := visitCount(body)
	switch {
	case err != nil:
		failed("wrong page", err.Error())
	case !known:
		l.tally.unavailable.Add(1)
		b.unavailable++
		b.uncertain = true
	default:
		if n != b.last+1 && (!b.uncertain || n <= b.last) {
			b.outOfOrder++
			l.tally.outOfOrder.Add(1)
			l.tally.mu.Lock()
			if len(l.tally.examples) < 10 {
				l.tally.examples = append(l.tally.examples, fmt.Sprintf("%s home: shown %d after %d", time.Now().Format("15:04:05.000"), n, b.last))
			}
			l.tally.mu.Unlock()
		}
		b.home++
		b.last = n
		b.uncertain = false
	}
}

// finalReads fetches every browser's home page once more and records the
// count it shows. A page saying the count is unavailable is counted and
// read again a second later (after the session store's back-off), up to
// three times.
func (l *loader) finalReads(ctx context.Context, browsers []*browser, conns int) {
	eachIndex(ctx, len(browsers), conns, func(i int, req *fasthttp.Request, resp *fasthttp.Response) {
		l.finalRead(ctx, browsers[i], req, resp)
	})
}

// eachIndex calls fn for every index below n from conns goroutines
// (testkit.Each), with a request and a response from fasthttp's pools.
func eachIndex(ctx context.Context, n, conns int, fn func(i int, req *fasthttp.Request, resp *fasthttp.Response)) {
	testkit.Each(ctx, n, conns, func(i int) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		fn(i, req, resp)
	})
}

func (l *loader) finalRead(ctx context.Context, b *browser, req *fasthttp.Request, resp *fasthttp.Response) {
	b.finalErr = true
	for try := 0; try < 3; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		if err := l.get(req, resp, "/catalog/", b); err != nil {
			l.tally.fail("final read: "+errKind(err), err.Error())
			return
		}
		if resp.StatusCode() != fasthttp.StatusOK {
			l.tally.fail("final read: status "+strconv.Itoa(resp.StatusCode()), "GET /catalog/")
			return
		}
		n, known, err := visitCount(resp.Body())
		switch {
		case err != nil:
			l.tally.fail("final read: wrong page", err.Error())
			return
		case !known:
			l.tally.unavailable.Add(1)
			l.tally.finalUnavailable.Add(1)
			b.finalTries++
		default:
			b.final, b.finalErr = n, false
			return
		}
	}
}

// browserAddr is browser i's own address, so that no two browsers share a
// limit on new sessions per address.
func browserAddr(i int) string {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
}
