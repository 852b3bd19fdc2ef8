package session

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

var testSecret = []byte("session test secret: thirty-two bytes or more")

func testOptions() Options {
	return Options{Lifetime: 14 * 24 * time.Hour, FirstVisitLifetime: time.Hour, Secret: testSecret}
}

// call is one operation a countingStore saw.
type call struct {
	op, key string
	ttl     time.Duration
}

// countingStore records every operation on the store it wraps: the tests
// hold a request to its budget of store calls with it.
type countingStore struct {
	Store
	mu    sync.Mutex
	calls []call
}

func (s *countingStore) record(op, key string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call{op, strings.Clone(key), ttl})
}

// take returns the calls since the last take.
func (s *countingStore) take() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := s.calls
	s.calls = nil
	return calls
}

func (s *countingStore) Get(key string) ([]byte, error) {
	s.record("get", key, 0)
	return s.Store.Get(key)
}

func (s *countingStore) Set(key string, val []byte, ttl time.Duration) error {
	s.record("set", key, ttl)
	return s.Store.Set(key, val, ttl)
}

func (s *countingStore) Delete(key string) error {
	s.record("delete", key, 0)
	return s.Store.Delete(key)
}

func (s *countingStore) Touch(key string, ttl time.Duration) error {
	s.record("touch", key, ttl)
	return s.Store.Touch(key, ttl)
}

func (s *countingStore) Increment(key string, ttl time.Duration) (uint64, error) {
	s.record("increment", key, ttl)
	return s.Store.Increment(key, ttl)
}

func (s *countingStore) GetAndIncrement(getKey, incrKey string) ([]byte, uint64, bool, error) {
	s.record("get_and_increment", getKey, 0)
	return s.Store.GetAndIncrement(getKey, incrKey)
}

// memcachedForTest returns a Store on LOCALLIBRARY_TEST_MEMCACHED, placed
// as app places sessions, or skips (fails with
// LOCALLIBRARY_TEST_REQUIRE_SERVICES=1) when it is unset.
func memcachedForTest(t testing.TB) *memcachestore.Storage {
	t.Helper()
	return newMemcached(t, testkit.Require(t, testkit.EnvMemcached), fmt.Sprintf("st%d:", time.Now().UnixNano()))
}

func newMemcached(t testing.TB, addr, prefix string) *memcachestore.Storage {
	t.Helper()
	store, err := memcachestore.New(memcachestore.Config{Servers: []string{addr}, Timeout: 2 * time.Second,
		MaxConns: 8, KeyPrefix: prefix, Place: Placement})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// stores runs a test on the in-process store and, when configured, on a
// real memcached.
func stores(t *testing.T, run func(t *testing.T, store Store)) {
	t.Run("memory", func(t *testing.T) { run(t, NewMemoryStore()) })
	t.Run("memcached", func(t *testing.T) { run(t, memcachedForTest(t)) })
}

// testSite is a minimal site on a Manager: a home page that counts visits
// and reads everything else the session has, and the forms that change it.
func testSite(t testing.TB, store Store, opts Options) *fiber.App {
	t.Helper()
	m, err := New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	app.Use(m.Middleware)
	app.Get("/", func(c *fiber.Ctx) error {
		s := From(c)
		n, err := s.Visit()
		s.Visit() // a second call must not count again
		if err != nil {
			return c.SendString("visits unknown: " + err.Error())
		}
		return c.SendString(fmt.Sprintf("visits=%d notice=%v per_page=%d token=%s", n, s.NoticeDismissed(), s.PerPage(), s.CSRFToken()))
	})
	app.Get("/list", func(c *fiber.Ctx) error {
		s := From(c)
		if n, err := strconv.Atoi(c.Query("per_page")); err == nil {
			if err := s.SetPerPage(n); err != nil {
				return err
			}
		}
		return c.SendString(fmt.Sprintf("per_page=%d notice=%v", s.PerPage(), s.NoticeDismissed()))
	})
	app.Get("/token", func(c *fiber.Ctx) error { return c.SendString(From(c).CSRFToken()) })
	app.Post("/dismiss", m.CheckCSRF, func(c *fiber.Ctx) error { return From(c).DismissNotice() })
	app.Post("/forget", m.CheckCSRF, func(c *fiber.Ctx) error { return From(c).Forget() })
	return app
}

// client is a browser's cookie jar, enough for one cookie.
type client struct {
	t       testing.TB
	app     *fiber.App
	id      string // the session cookie, "" for none
	perPage string // the page-size cookie, "" for none
}

func (cl *client) do(method, target string, form url.Values, header map[string]string) (int, string) {
	cl.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	var cookies []string
	if cl.id != "" {
		cookies = append(cookies, CookieName+"="+cl.id)
	}
	if cl.perPage != "" {
		cookies = append(cookies, PerPageCookie+"="+cl.perPage)
	}
	if len(cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(cookies, "; "))
	}
	resp, err := cl.app.Test(req, 10_000)
	if err != nil {
		cl.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		value := c.Value
		if c.Expires.Before(time.Now()) && !c.Expires.IsZero() {
			value = ""
		}
		switch c.Name {
		case CookieName:
			cl.id = value
		case PerPageCookie:
			cl.perPage = value
		}
	}
	return resp.StatusCode, string(raw)
}

func (cl *client) home() string {
	cl.t.Helper()
	status, body := cl.do("GET", "/", nil, nil)
	if status != 200 {
		cl.t.Fatalf("home: %d %s", status, body)
	}
	return body
}

func field(body, name string) string {
	for _, f := range strings.Fields(body) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestAReturningBrowsersHomePageIsOneStoreCall(t *testing.T) {
	stores(t, func(t *testing.T, store Store) {
		counted := &countingStore{Store: store}
		app := testSite(t, counted, testOptions())
		for _, dismiss := range []bool{false, true} {
			cl := &client{t: t, app: app}
			cl.home()
			if dismiss {
				cl.do("POST", "/dismiss", url.Values{CSRFField: {field(cl.home(), "token")}}, nil)
			}
			before := field(cl.home(), "visits") // renews the new session: the browser came back
			counted.take()
			body := cl.home()
			calls := counted.take()
			if len(calls) != 1 || calls[0].op != "get_and_increment" {
				t.Errorf("dismissed=%v: a returning browser's home page made %v, want one get_and_increment", dismiss, calls)
			}
			if n, _ := strconv.Atoi(before); field(body, "visits") != strconv.Itoa(n+1) {
				t.Errorf("dismissed=%v: visits %s after %s", dismiss, field(body, "visits"), before)
			}
			if field(body, "notice") != strconv.FormatBool(dismiss) || field(body, "token") == "" {
				t.Errorf("dismissed=%v: page %q", dismiss, body)
			}
		}
	})
}

func TestARequestReadsItsSessionOnce(t *testing.T) {
	stores(t, func(t *testing.T, store Store) {
		counted := &countingStore{Store: store}
		app := testSite(t, counted, testOptions())
		cl := &client{t: t, app: app}
		cl.home()
		cl.home()
		counted.take()
		cl.do("GET", "/list?per_page=25", nil, nil)
		if calls := counted.take(); len(calls) != 1 || calls[0].op != "get" {
			t.Errorf("choosing a page size and reading the notice made %v, want one get (the size is a cookie)", calls)
		}
		if _, body := cl.do("GET", "/list", nil, nil); body != "per_page=25 notice=false" {
			t.Fatalf("list: %q", body)
		}
		if calls := counted.take(); len(calls) != 1 || calls[0].op != "get" {
			t.Errorf("a page reading the session twice made %v, want one get", calls)
		}
	})
}

func TestVisitsAreCountedOnceAndAllOfThem(t *testing.T) {
	stores(t, func(t *testing.T, store Store) {
		app := testSite(t, store, testOptions())
		cl := &client{t: t, app: app}
		cl.home()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { (&client{t: t, app: app, id: cl.id}).home() })
		}
		wg.Wait()
		if got := field(cl.home(), "visits"); got != "22" {
			t.Fatalf("1 + 20 concurrent + 1 visits read %s, want 22 (each request counts once)", got)
		}
	})
}

func TestANewSessionLivesShortlyUntilItsBrowserComesBack(t *testing.T) {
	counted := &countingStore{Store: NewMemoryStore()}
	opts := testOptions()
	app := testSite(t, counted, opts)
	cl := &client{t: t, app: app}
	cl.home()
	for _, c := range counted.take() {
		if (c.op == "set" || c.op == "increment") && c.ttl != opts.FirstVisitLifetime {
			t.Errorf("first visit: %s %s for %v, want the first-visit lifetime %v", c.op, c.key, c.ttl, opts.FirstVisitLifetime)
		}
	}
	cl.home()
	var renewed, touched bool
	for _, c := range counted.take() {
		renewed = renewed || c.op == "set" && c.key == EntryKey(cl.id) && c.ttl == opts.Lifetime
		touched = touched || c.op == "touch" && c.key == VisitKey(cl.id) && c.ttl == opts.Lifetime
	}
	if !renewed || !touched {
		t.Errorf("the browser came back: entry renewed %v, counter extended %v; want both for %v", renewed, touched, opts.Lifetime)
	}
	if got := field(cl.home(), "visits"); got != "3" {
		t.Errorf("visits %s, want 3", got)
	}
}

func TestAdmitCanRefuseNewSessions(t *testing.T) {
	counted := &countingStore{Store: NewMemoryStore()}
	admit := true
	opts := testOptions()
	opts.Admit = func(*fiber.Ctx) bool { return admit }
	app := testSite(t, counted, opts)
	admit = false
	cl := &client{t: t, app: app}
	if body := cl.home(); !strings.Contains(body, ErrNotAdmitted.Error()) || cl.id != "" {
		t.Errorf("refused: page %q, cookie %q", body, cl.id)
	}
	for _, c := range counted.take() {
		if c.op != "get_and_increment" && c.op != "get" {
			t.Errorf("a refused session was written: %v", c)
		}
	}
	admit = true
	if got := field(cl.home(), "visits"); got != "1" || cl.id == "" {
		t.Errorf("admitted: visits %s, cookie %q", got, cl.id)
	}
	admit = false // a session already stored is no new one
	if got := field(cl.home(), "visits"); got != "2" {
		t.Errorf("an admitted browser's next visit: %s", got)
	}
}

func TestForgetEndsTheSession(t *testing.T) {
	stores(t, func(t *testing.T, store Store) {
		app := testSite(t, store, testOptions())
		cl := &client{t: t, app: app}
		token := field(cl.home(), "token")
		cl.do("POST", "/dismiss", url.Values{CSRFField: {token}}, nil)
		cl.do("GET", "/list?per_page=50", nil, nil)
		old := cl.id
		if status, _ := cl.do("POST", "/forget", url.Values{CSRFField: {token}}, nil); status != 200 || cl.id != "" {
			t.Fatalf("forget: %d, cookie %q", status, cl.id)
		}
		body := cl.home()
		if field(body, "visits") != "1" || field(body, "notice") != "false" || field(body, "per_page") != "0" || cl.id == old {
			t.Errorf("after forgetting: %q with id %q (was %q)", body, cl.id, old)
		}
		if raw, _ := store.Get(EntryKey(old)); raw != nil {
			t.Error("the forgotten entry is still stored")
		}
		if status, _ := cl.do("POST", "/dismiss", url.Values{CSRFField: {token}}, nil); status != 403 {
			t.Errorf("the forgotten session's token: %d, want 403", status)
		}
	})
}

func TestCSRFTokens(t *testing.T) {
	app := testSite(t, NewMemoryStore(), testOptions())
	cl := &client{t: t, app: app}
	token := field(cl.home(), "token")
	other := &client{t: t, app: app}
	otherToken := field(other.home(), "token")
	tests := []struct {
		name   string
		target string
		form   url.Values
		header map[string]string
		want   int
	}{
		{"none", "/dismiss", url.Values{}, nil, 403},
		{"another session's", "/dismiss", url.Values{CSRFField: {otherToken}}, nil, 403},
		{"tampered", "/dismiss", url.Values{CSRFField: {token[:len(token)-1] + "x"}}, nil, 403},
		{"too long", "/dismiss", url.Values{CSRFField: {token + "A"}}, nil, 403},
		{"in the query string only", "/dismiss?" + CSRFField + "=" + token, url.Values{}, nil, 403},
		{"in the form", "/dismiss", url.Values{CSRFField: {token}}, nil, 200},
		{"in the header", "/dismiss", url.Values{}, map[string]string{CSRFHeader: token}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := cl.do("POST", tt.target, tt.form, tt.header); status != tt.want {
				t.Errorf("status %d, want %d", status, tt.want)
			}
		})
	}
	stranger := &client{t: t, app: app}
	if status, _ := stranger.do("POST", "/dismiss", url.Values{CSRFField: {token}}, nil); status != 403 {
		t.Errorf("a request without a session cookie: %d, want 403", status)
	}
}

func TestATokenCanBeHadWithoutASession(t *testing.T) {
	counted := &countingStore{Store: NewMemoryStore()}
	cl := &client{t: t, app: testSite(t, counted, testOptions())}
	_, token := cl.do("GET", "/token", nil, nil)
	if token == "" || cl.id == "" {
		t.Fatalf("token %q, cookie %q", token, cl.id)
	}
	if status, _ := cl.do("POST", "/forget", url.Values{CSRFField: {token}}, nil); status != 200 {
		t.Errorf("forget with the token of a page: %d", status)
	}
	for _, c := range counted.take() {
		if c.op == "set" {
			t.Errorf("a token stored something: %v", c)
		}
	}
}

func TestEveryBrowserStoresTheSameSmallEntry(t *testing.T) {
	e := entry{savedAt: time.Now().Unix(), returned: true, notice: true}
	raw := e.encode(nil)
	if got, ok := decodeEntry(raw); !ok || got != e {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", e, got, ok)
	}
	if len(raw) > 8 {
		t.Errorf("an entry takes %d bytes", len(raw))
	}
	for _, bad := range [][]byte{nil, {}, []byte("this is not an entry"), {entryVersion}, {entryVersion, 0, 0}, {2, 0, 0, 1},
		{entryVersion, 0x80, 0, 1}, append(raw, 0), {entryVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}} {
		if _, ok := decodeEntry(bad); ok {
			t.Errorf("%q decoded as an entry", bad)
		}
	}
}

func TestAnUndecodableEntryStartsAfresh(t *testing.T) {
	stores(t, func(t *testing.T, store Store) {
		cl := &client{t: t, app: testSite(t, store, testOptions())}
		cl.home()
		old := cl.id
		if err := store.Set(EntryKey(old), []byte("\x80not an entry"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := field(cl.home(), "visits"); got != "1" || cl.id == old {
			t.Errorf("corrupt entry: visits %s, id kept: %v", got, cl.id == old)
		}
	})
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !validID(id) || seen[id] {
			t.Fatalf("newID gave %q: valid %v, repeated %v", id, validID(id), seen[id])
		}
		seen[id] = true
		if Placement(VisitKey(id)) != id || Placement(EntryKey(id)) != id {
			t.Fatalf("%q: entry and counter placed apart", id)
		}
	}
	for _, bad := range []string{"", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB",
		"AAAAAAAAAAAAAAAAAAAA=A", "AAAAAAAAAAAAAAAAAAAA A", "AAAAAAAAAAAAAAAAAAAA:A", "AAAAAAAAAAAAAAAAAAAAé"} {
		if validID(bad) {
			t.Errorf("%q taken for an id", bad)
		}
	}
}

// FuzzSessionCookie sends any session cookie: the home page always
// answers, never adopts an id it did not issue, and never asks the store
// about a key outside the session namespace (an entry or counter of an id
// it could have issued).
func FuzzSessionCookie(f *testing.F) {
	for _, seed := range []string{"", "AAAAAAAAAAAAAAAAAAAAAA", "a b", "x\x00y", strings.Repeat("z", 300), "%ff", `"`, "é",
		"not-an-issued-id", "abc\x01def", "v:AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB"} {
		f.Add(seed)
	}
	counted := &countingStore{Store: NewMemoryStore()}
	app := testSite(f, counted, testOptions())
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", CookieName+"="+value)
		resp, err := app.Test(req, 10_000)
		if err != nil {
			// fasthttp refused the header (a control character, say)
			// before any handler ran: nothing was adopted or stored.
			if n := len(counted.take()); n != 0 {
				t.Fatalf("cookie %q: refused, yet %d store calls", value, n)
			}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("cookie %q: status %d", value, resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Name == CookieName && value != "" && c.Value == value {
				t.Fatalf("forged id %q was adopted", value)
			}
		}
		for _, c := range counted.take() {
			if !validID(Placement(c.key)) || (c.key != EntryKey(Placement(c.key)) && c.key != VisitKey(Placement(c.key))) {
				t.Fatalf("cookie %q: the store was asked about %q", value, c.key)
			}
			if c.op != "set" && c.op != "increment" && !strings.Contains(value, Placement(c.key)) {
				t.Fatalf("cookie %q: the store was read for another id: %v", value, c)
			}
		}
	})
}

// TestMemcachedBytesPerBrowser measures what a browser costs memcached,
// item headers included, on a memcached of its own: memcached's "bytes"
// statistic after browsers that did and did not click "Got it".
func TestMemcachedBytesPerBrowser(t *testing.T) {
	const browsers = 200
	const budget = 260 // bytes per browser
	for _, dismiss := range []bool{false, true} {
		t.Run(fmt.Sprintf("dismissed=%v", dismiss), func(t *testing.T) {
			node := memcachedtest.Start(t, "")
			app := testSite(t, newMemcached(t, node.Addr, "ll:"), testOptions()) // the production prefix
			for range browsers {
				cl := &client{t: t, app: app}
				cl.home()
				if dismiss {
					cl.do("POST", "/dismiss", url.Values{CSRFField: {field(cl.home(), "token")}}, nil)
				}
				cl.home()
			}
			stats := memcachedStats(t, node.Addr)
			items, bytes := stats["curr_items"], stats["bytes"]
			t.Logf("%d browsers: %d items, %d bytes: %d bytes per browser", browsers, items, bytes, bytes/browsers)
			if items != 2*browsers || bytes/browsers > budget {
				t.Errorf("%d items (want %d), %d bytes per browser (budget %d)", items, 2*browsers, bytes/browsers, budget)
			}
		})
	}
}

// memcachedStats returns the numeric lines of memcached's "stats".
func memcachedStats(t *testing.T, addr string) map[string]int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "stats\r\n"); err != nil {
		t.Fatal(err)
	}
	stats := map[string]int{}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "END" {
			return stats
		}
		if len(f) == 3 && f[0] == "STAT" {
			if n, err := strconv.Atoi(f[2]); err == nil {
				stats[f[1]] = n
			}
		}
	}
}

func TestSaveEveryRequestRenewsOnEveryPage(t *testing.T) {
	counted := &countingStore{Store: NewMemoryStore()}
	opts := testOptions()
	opts.SaveEveryRequest = true
	cl := &client{t: t, app: testSite(t, counted, opts)}
	cl.home()
	cl.home()
	counted.take()
	for _, target := range []string{"/", "/token"} { // a page that counts, and one that reads nothing
		cl.do("GET", target, nil, nil)
		var sets, touches int
		for _, c := range counted.take() {
			if c.op == "set" && c.key == EntryKey(cl.id) && c.ttl == opts.Lifetime {
				sets++
			}
			if c.op == "touch" && c.key == VisitKey(cl.id) {
				touches++
			}
		}
		if sets != 1 || touches != 1 {
			t.Errorf("GET %s: %d writes and %d counter renewals of the session, want 1 each", target, sets, touches)
		}
	}
}

// TestAdmitIsAskedOncePerRequest: a first visit that shows a form and
// stores its session needs a new session twice (the token's id, then the
// stored entry) and must count once against a per-address limit.
func TestAdmitIsAskedOncePerRequest(t *testing.T) {
	asked := 0
	opts := testOptions()
	opts.Admit = func(*fiber.Ctx) bool { asked++; return true }
	m, err := New(NewMemoryStore(), opts)
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	app.Use(m.Middleware)
	app.Get("/", func(c *fiber.Ctx) error {
		s := From(c)
		token := s.CSRFToken()
		n, err := s.Visit()
		if err != nil || token == "" {
			return fmt.Errorf("token %q, visit %d: %v", token, n, err)
		}
		return c.SendString(strconv.FormatUint(n, 10))
	})
	resp, err := app.Test(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || asked != 1 {
		t.Errorf("first visit: status %d, Admit asked %d times, want 200 and once", resp.StatusCode, asked)
	}
}
