package routes_test

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
	"github.com/locallibrary/locallibrary/internal/session"
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

func TestSessionChangesWhileMemcachedIsDownAre503(t *testing.T) {
	store := newMemcachedStore(t, memcachestore.Config{Servers: []string{memcachedtest.FreeAddr(t)}, Timeout: 200 * time.Millisecond})
	app := mustApp(t, routes.Deps{Sessions: sessionsOn(t, store)})
	b := newBrowser(t, app)
	b.jar[session.CookieName] = &http.Cookie{Name: session.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"}
	token := csrfTokenIn(t, b.visit("/catalog/forget/")) // the token needs no store
	for _, path := range []string{"/catalog/notice/dismiss", "/catalog/forget/"} {
		r := b.do("POST", path, url.Values{"csrfmiddlewaretoken": {token}})
		if r.status != 503 || !strings.Contains(r.body, "Your session is unavailable") {
			t.Errorf("POST %s with memcached down: %d, want 503 (not a 403 blaming the visitor)", path, r.status)
		}
	}
}
