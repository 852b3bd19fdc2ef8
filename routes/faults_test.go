package routes_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/routes"
)

func waitUntil(t *testing.T, what string, limit time.Duration, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSlowMemcachedDoesNotHoldThePage(t *testing.T) {
	// A memcached that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	store := newMemcachedStore(t, memcachestore.Config{Servers: []string{ln.Addr().String()}, Timeout: 100 * time.Millisecond})
	app := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	cookie := &http.Cookie{Name: session.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"}
	for range 3 {
		start := time.Now()
		r := get(t, app, "GET", "/catalog/", cookie)
		if r.status != 200 || !strings.Contains(r.body, "visit count is unavailable") {
			t.Fatalf("status %d:\n%s", r.status, r.body)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("home page took %v with memcached hanging (timeout 100ms)", took)
		}
	}
}

func TestCountingResumesWhenMemcachedReturns(t *testing.T) {
	addr := memcachedtest.FreeAddr(t)
	node := memcachedtest.Start(t, addr)
	store := newMemcachedStore(t, memcachestore.Config{Servers: []string{addr}, Timeout: 200 * time.Millisecond})
	app := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	b := newBrowser(t, app)
	if got := visits(t, b.visit("/catalog/")); got != 1 {
		t.Fatalf("first visit: %d", got)
	}

	node.Kill()
	if r := b.visit("/catalog/"); r.status != 200 || !strings.Contains(r.body, "visit count is unavailable") {
		t.Fatalf("with memcached down: %d", r.status)
	}
	if r := b.visit("/catalog/books/"); r.status != 200 {
		t.Errorf("book list with memcached down: %d", r.status)
	}

	memcachedtest.Start(t, addr) // back, empty: the old session is gone
	waitUntil(t, "counting resumes", 15*time.Second, func() bool {
		return visitsRE.MatchString(b.visit("/catalog/").body)
	})
	if got := visits(t, b.visit("/catalog/")); got != 2 {
		t.Errorf("after memcached returned the count reads %d, want 2 (a fresh session, counted again)", got)
	}
}

func TestNoSessionLostWhenOneOfThreeNodesDies(t *testing.T) {
	var nodes []*memcachedtest.Server
	var addrs []string
	for range 3 {
		n := memcachedtest.Start(t, "")
		nodes = append(nodes, n)
		addrs = append(addrs, n.Addr)
	}
	store := newMemcachedStore(t, memcachestore.Config{Servers: addrs, Replicas: 2, Timeout: 2 * time.Second})
	app := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})

	const browsers = 150
	cookies := make([]*http.Cookie, browsers)
	for i := range cookies {
		cookies[i] = sessionCookie(t, newBrowser(t, app).visit("/catalog/"))
		if got := visits(t, get(t, app, "GET", "/catalog/", cookies[i])); got != 2 {
			t.Fatalf("browser %d: second visit reads %d", i, got)
		}
	}
	nodes[1].Kill()
	var lost []string
	for i, c := range cookies {
		r := get(t, app, "GET", "/catalog/", c)
		if !visitsRE.MatchString(r.body) || visits(t, r) != 3 {
			lost = append(lost, strconv.Itoa(i))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("with one of three nodes dead, %d of %d browsers lost their count: %s", len(lost), browsers, strings.Join(lost, ","))
	}
}

// A form loaded before memcached went down still carries a good token: its
// POST answers 503, worth a retry, not a 403 blaming the visitor. A page
// loaded while memcached is down cannot vouch for the browser's session, so
// it gets no token, and says the session cannot be changed right now.
func TestSessionChangesWhileMemcachedIsDownAre503(t *testing.T) {
	node := memcachedtest.Start(t, "")
	store := newMemcachedStore(t, memcachestore.Config{Servers: []string{node.Addr}, Timeout: 200 * time.Millisecond})
	app := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	b := newBrowser(t, app)
	tokens := map[string]string{
		"/catalog/notice/dismiss": csrfTokenIn(t, b.visit("/catalog/")),
		"/catalog/forget/":        csrfTokenIn(t, b.visit("/catalog/forget/")),
	}
	node.Kill()
	if r := b.visit("/catalog/forget/"); r.status != 200 || csrfRE.MatchString(r.body) || !strings.Contains(r.body, "cannot be changed right now") {
		t.Errorf("the forget page with memcached down: %d, want 200 with no form and a word why:\n%s", r.status, r.body)
	}
	for path, token := range tokens {
		r := b.do("POST", path, url.Values{"csrfmiddlewaretoken": {token}})
		if r.status != 503 || !strings.Contains(r.body, "Your session is unavailable") {
			t.Errorf("POST %s with memcached down: %d, want 503 (not a 403 blaming the visitor)", path, r.status)
		}
	}
}

// busyCatalog answers its pages' queries while a ping of its own would
// wait for a pool that the pages keep full; down makes every call fail as
// a dropped connection does.
type busyCatalog struct {
	fakeCatalog
	poolFull, down atomic.Bool
	pings          atomic.Int64
}

var errConnRefused = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}

func (b *busyCatalog) Book(ctx context.Context, id int64) (repository.Book, error) {
	if b.down.Load() {
		return repository.Book{}, errConnRefused
	}
	return b.fakeCatalog.Book(ctx, id)
}

func (b *busyCatalog) Ping(ctx context.Context) error {
	b.pings.Add(1)
	switch {
	case b.down.Load():
		return errConnRefused
	case b.poolFull.Load():
		<-ctx.Done() // queued behind the pages' queries
		return ctx.Err()
	}
	return nil
}

// A flood of unknown ids keeps the pool busy but MySQL answers each one:
// the replica stays ready, and /readyz answers at once without a query of
// its own. A dropped connection turns it to 503 at once.
func TestReadyWhileAFloodKeepsThePoolBusy(t *testing.T) {
	catalog := &busyCatalog{fakeCatalog: fakeCatalog{books: 25, authors: 10}}
	app := mustApp(t, routes.Deps{Catalog: catalog})
	if r := get(t, app, "GET", "/readyz"); r.status != 200 {
		t.Fatalf("/readyz before the flood: %d", r.status)
	}
	catalog.poolFull.Store(true)
	pingsBefore := catalog.pings.Load()
	for i := range 20 {
		if r := get(t, app, "GET", "/catalog/book/"+strconv.Itoa(1000+i)); r.status != 404 {
			t.Fatalf("unknown book: %d", r.status)
		}
		start := time.Now()
		if r := get(t, app, "GET", "/readyz"); r.status != 200 {
			t.Fatalf("/readyz while the pages' queries are answered: %d %q, want 200", r.status, r.body)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("/readyz took %v: it waited for the pool", took)
		}
	}
	if n := catalog.pings.Load() - pingsBefore; n != 0 {
		t.Errorf("/readyz pinged %d times while pages were answered", n)
	}

	catalog.down.Store(true)
	if r := get(t, app, "GET", "/catalog/book/2000"); r.status != 503 {
		t.Errorf("a page with the connection refused: %d, want 503", r.status)
	}
	if r := get(t, app, "GET", "/readyz"); r.status != 503 {
		t.Errorf("/readyz after a refused connection: %d, want 503", r.status)
	}
	catalog.down.Store(false)
	catalog.poolFull.Store(false)
	if r := get(t, app, "GET", "/readyz"); r.status != 200 {
		t.Errorf("/readyz once MySQL is back: %d, want 200", r.status)
	}
}

// Without pages to show MySQL answers, a hung MySQL is found by the ping.
func TestNotReadyWhenPingHangs(t *testing.T) {
	catalog := &busyCatalog{fakeCatalog: fakeCatalog{books: 25, authors: 10}}
	app := mustApp(t, routes.Deps{Catalog: catalog})
	catalog.poolFull.Store(true)
	start := time.Now()
	if r := get(t, app, "GET", "/readyz"); r.status != 503 {
		t.Errorf("/readyz with no answer and a hanging ping: %d, want 503", r.status)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("/readyz took %v with a hanging ping", took)
	}
}
