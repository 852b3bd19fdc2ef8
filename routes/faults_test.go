package routes_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/memcachestore"
	"github.com/locallibrary/locallibrary/routes"
)

// memcachedProcess is a memcached of the test's own, so it can be killed.
type memcachedProcess struct {
	addr string
	cmd  *exec.Cmd
}

// startMemcachedAt starts memcached on addr (loopback) and waits until it
// listens; it is killed when the test ends.
func startMemcachedAt(t *testing.T, addr string) *memcachedProcess {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if os.Getenv("LOCALLIBRARY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("memcached binary not found and LOCALLIBRARY_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("memcached binary not found (apt-get install memcached)")
	}
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", host, "-p", port, "-U", "0", "-m", "16", "-t", "1"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	p := &memcachedProcess{addr: addr, cmd: exec.Command(bin, args...)}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	waitUntil(t, "memcached listening on "+addr, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

func (p *memcachedProcess) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

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
	store, err := memcachestore.New(memcachestore.Config{Servers: []string{ln.Addr().String()}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	app := mustApp(t, routes.Deps{SessionStorage: store, Visits: store})
	cookie := &http.Cookie{Name: routes.SessionCookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"}
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
	addr := freeAddr(t)
	node := startMemcachedAt(t, addr)
	store, err := memcachestore.New(memcachestore.Config{Servers: []string{addr}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	app := mustApp(t, routes.Deps{SessionStorage: store, Visits: store})
	b := newBrowser(t, app)
	if got := visits(t, b.visit("/catalog/")); got != 1 {
		t.Fatalf("first visit: %d", got)
	}

	node.kill()
	if r := b.visit("/catalog/"); r.status != 200 || !strings.Contains(r.body, "visit count is unavailable") {
		t.Fatalf("with memcached down: %d", r.status)
	}
	if r := b.visit("/catalog/books/"); r.status != 200 {
		t.Errorf("book list with memcached down: %d", r.status)
	}

	startMemcachedAt(t, addr) // back, empty: the old session is gone
	waitUntil(t, "counting resumes", 15*time.Second, func() bool {
		return visitsRE.MatchString(b.visit("/catalog/").body)
	})
	if got := visits(t, b.visit("/catalog/")); got != 2 {
		t.Errorf("after memcached returned the count reads %d, want 2 (a fresh session, counted again)", got)
	}
}

func TestNoSessionLostWhenOneOfThreeNodesDies(t *testing.T) {
	var nodes []*memcachedProcess
	var addrs []string
	for range 3 {
		n := startMemcachedAt(t, freeAddr(t))
		nodes = append(nodes, n)
		addrs = append(addrs, n.addr)
	}
	store, err := memcachestore.New(memcachestore.Config{Servers: addrs, Replicas: 2, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	app := mustApp(t, routes.Deps{SessionStorage: store, Visits: store})

	const browsers = 150
	cookies := make([]*http.Cookie, browsers)
	for i := range cookies {
		cookies[i] = sessionCookie(t, newBrowser(t, app).visit("/catalog/"))
		if got := visits(t, get(t, app, "GET", "/catalog/", cookies[i])); got != 2 {
			t.Fatalf("browser %d: second visit reads %d", i, got)
		}
	}
	nodes[1].kill()
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
