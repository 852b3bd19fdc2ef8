package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// browser is a returning visitor: the cookies a real browser would send
// after its first visit (persistent cookies only: the session-only test
// cookie is gone once the browser restarts), and what the site last told it.
type browser struct {
	sessionID string
	cookie    string // the Cookie header of a returning visit
	visits    int    // the count the site showed last
	dismissed bool   // the demo notice was dismissed
}

// keyPrefix is the service's default LOCALLIBRARY_MEMCACHED_KEY_PREFIX.
var keyPrefix = func() string {
	cfg, _ := config.Load(func(string) string { return "" })
	return cfg.MemcachedKeyPrefix
}()

// The browser's keys in memcached, as the session package names them.
// sessionKey and counterKey are the browser's keys in the bench's own
// memcached, which starts in generation 0.
func (b browser) sessionKey() string {
	return memcachestore.StoredKey(keyPrefix, 0, session.EntryKey(b.sessionID))
}
func (b browser) counterKey() string {
	return memcachestore.StoredKey(keyPrefix, 0, session.VisitKey(b.sessionID))
}

var visitsPattern = regexp.MustCompile(`You have visited this page (\d+) times?\.`)

// noticeMarker is in the home page only while the demo notice shows;
// unavailableMarker when the session store failed and the visit was not
// counted.
const (
	dismissAction     = "/catalog/notice/dismiss"
	noticeMarker      = `action="` + dismissAction + `"`
	unavailableMarker = `class="visits-unavailable"`
)

// site talks to one service as browsers do, over shared connections.
type site struct {
	base      string // http://127.0.0.1:port
	transport *http.Transport
	client    *http.Client // for returning visits, which send a fixed Cookie header
}

func newSite(base string) *site {
	transport := &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}
	return &site{base: base, transport: transport, client: testkit.NewBrowser(base, transport).Client}
}

// newBrowser makes a browser's first visit (the cookie check's redirects
// included), then, when dismiss is set, dismisses the demo notice by
// submitting its form (with the CSRF token it carries) as a person
// clicking "Got it" would.
func (s *site) newBrowser(ctx context.Context, dismiss bool) (browser, error) {
	tb := testkit.NewBrowser(s.base, s.transport)
	pg, err := tb.Get(ctx, "/")
	if err != nil {
		return browser{}, err
	}
	if pg.Status != http.StatusOK || len(pg.Hops) != 3 {
		return browser{}, fmt.Errorf("first visit: status %d after redirects %v, want 200 after / → /catalog/ → ?cookies=check → /catalog/", pg.Status, pg.Hops)
	}
	b := browser{}
	if b.visits, err = visitsShown(pg.Body); err != nil {
		return b, fmt.Errorf("first visit: %w", err)
	}
	if b.visits != 1 {
		return b, fmt.Errorf("first visit shows %d visits, want 1", b.visits)
	}
	if dismiss {
		pg, err = tb.Submit(ctx, pg, dismissAction)
		if err != nil {
			return b, fmt.Errorf("first visit: dismissing the demo notice: %w", err)
		}
		if pg.Status != http.StatusOK || len(pg.Hops) != 1 || pg.Hops[0] != http.StatusSeeOther {
			return b, fmt.Errorf("dismissing the notice: status %d after redirects %v, want 303 then 200", pg.Status, pg.Hops)
		}
		if strings.Contains(pg.Body, noticeMarker) {
			return b, fmt.Errorf("the notice still shows after it was dismissed")
		}
		if b.visits, err = visitsShown(pg.Body); err != nil {
			return b, fmt.Errorf("after dismissing: %w", err)
		}
		b.dismissed = true
	}
	b.sessionID = tb.Jar.Value("sessionid")
	b.cookie = tb.Jar.Header("/catalog/", true)
	if b.sessionID == "" {
		return b, fmt.Errorf("no sessionid cookie after the first visit")
	}
	return b, nil
}

func visitsShown(body string) (int, error) {
	m := visitsPattern.FindStringSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("no visit count in the page")
	}
	return strconv.Atoi(m[1])
}

// newBrowsers creates n browsers, a few at a time; the first failure
// stops the rest.
func (s *site) newBrowsers(ctx context.Context, n int, dismiss bool) ([]browser, error) {
	out := make([]browser, n)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	testkit.Each(ctx, n, 8, func(i int) {
		b, err := s.newBrowser(ctx, dismiss)
		if err != nil {
			cancel(fmt.Errorf("browser %d: %w", i, err))
			return
		}
		out[i] = b
	})
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// revisit fetches a returning browser's home page once and returns the
// count it shows.
func (s *site) revisit(ctx context.Context, b browser) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/catalog/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Cookie", b.cookie)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if strings.Contains(string(raw), unavailableMarker) {
		return 0, fmt.Errorf("the page says the visit count is unavailable")
	}
	if b.dismissed && strings.Contains(string(raw), noticeMarker) {
		return 0, fmt.Errorf("the dismissed notice shows again")
	}
	return visitsShown(string(raw))
}

// revisitAll fetches every browser's page once, a few at a time, and
// returns the counts shown (-1 where the fetch failed) and the failures.
func (s *site) revisitAll(ctx context.Context, bs []browser) ([]int, []error) {
	counts := make([]int, len(bs))
	for i := range counts {
		counts[i] = -1 // until fetched
	}
	var mu sync.Mutex
	var errs []error
	testkit.Each(ctx, len(bs), 8, func(i int) {
		n, err := s.revisit(ctx, bs[i])
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("browser %d: %w", i, err))
			mu.Unlock()
			return
		}
		counts[i] = n
	})
	return counts, errs
}

// sessionSize is what a group of browsers' sessions occupy in memcached.
type sessionSize struct {
	Browsers     int     `json:"browsers"`
	SessionKey   float64 `json:"session_key_bytes"`   // "ll:" + id
	SessionValue float64 `json:"session_value_bytes"` // Fiber's gob-encoded session data
	CounterKey   float64 `json:"counter_key_bytes"`   // "ll:v:" + id
	CounterValue float64 `json:"counter_value_bytes"` // the visit count in decimal
	KeyValue     float64 `json:"key_value_bytes"`     // the four above: what the site stores
	Items        float64 `json:"item_bytes"`          // memcached's item sizes (headers included), from metadump
	ItemsPerSess float64 `json:"items_per_session"`
	StatsBytes   float64 `json:"stats_bytes_delta"` // memcached "bytes" growth per browser created
	StatsItems   float64 `json:"stats_items_delta"` // memcached "curr_items" growth per browser created
	Missing      int     `json:"missing"`           // sessions not found in memcached
}

// measureSessions sums key and value sizes of the browsers' entries, and
// memcached's own accounting of them.
func measureSessions(mc *memcached, bs []browser, before, after map[string]string) (sessionSize, error) {
	sz := sessionSize{Browsers: len(bs)}
	if len(bs) == 0 {
		return sz, nil
	}
	items, err := mc.itemSizes()
	if err != nil {
		return sz, fmt.Errorf("lru_crawler metadump: %w", err)
	}
	keys := make([]string, 0, 2*len(bs))
	for _, b := range bs {
		keys = append(keys, b.sessionKey(), b.counterKey())
	}
	lens, err := mc.valueLens(keys)
	if err != nil {
		return sz, err
	}
	var nItems int
	for _, b := range bs {
		sv, cv := lens[b.sessionKey()], lens[b.counterKey()]
		if sv < 0 {
			sz.Missing++
			continue
		}
		sz.SessionKey += float64(len(b.sessionKey()))
		sz.SessionValue += float64(sv)
		if cv >= 0 {
			sz.CounterKey += float64(len(b.counterKey()))
			sz.CounterValue += float64(cv)
		}
		for _, k := range []string{b.sessionKey(), b.counterKey()} {
			if n, ok := items[k]; ok {
				sz.Items += float64(n)
				nItems++
			}
		}
	}
	found := float64(len(bs) - sz.Missing)
	if found > 0 {
		sz.SessionKey /= found
		sz.SessionValue /= found
		sz.CounterKey /= found
		sz.CounterValue /= found
		sz.Items /= found
		sz.ItemsPerSess = float64(nItems) / found
	}
	sz.KeyValue = sz.SessionKey + sz.SessionValue + sz.CounterKey + sz.CounterValue
	if before != nil && after != nil {
		sz.StatsBytes = float64(testkit.StatInt(after, "bytes")-testkit.StatInt(before, "bytes")) / float64(len(bs))
		sz.StatsItems = float64(testkit.StatInt(after, "curr_items")-testkit.StatInt(before, "curr_items")) / float64(len(bs))
	}
	return sz, nil
}
