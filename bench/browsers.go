package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// browser is a returning visitor: the cookies a real browser would send
// after its first visit (persistent cookies only: the session-only test
// cookie is gone once the browser restarts), and what the site last told it.
type browser struct {
	sessionID string
	csrfToken string // the csrftoken cookie
	cookie    string // the Cookie header of a returning visit
	visits    int    // the count the site showed last
	dismissed bool   // the demo notice was dismissed
}

// keyPrefix is the service's default LOCALLIBRARY_MEMCACHED_KEY_PREFIX.
const keyPrefix = "ll:"

func (b browser) sessionKey() string { return keyPrefix + b.sessionID }
func (b browser) counterKey() string { return keyPrefix + "v:" + b.sessionID }

var (
	tokenPattern  = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)
	visitsPattern = regexp.MustCompile(`You have visited this page (\d+) times?\.`)
)

// noticeMarker is in the home page only while the demo notice shows;
// unavailableMarker when the session store failed and the visit was not
// counted.
const (
	noticeMarker      = `action="/catalog/notice/dismiss"`
	unavailableMarker = `class="visits-unavailable"`
)

type jarCookie struct {
	value, path string
	persistent  bool
}

// cookieJar is the little of a browser's cookie handling the site needs.
type cookieJar map[string]jarCookie

func (j cookieJar) update(resp *http.Response) {
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) {
			delete(j, c.Name)
			continue
		}
		path := c.Path
		if path == "" {
			path = "/"
		}
		j[c.Name] = jarCookie{value: c.Value, path: path, persistent: c.MaxAge > 0 || !c.Expires.IsZero()}
	}
}

func (j cookieJar) header(reqPath string, persistentOnly bool) string {
	names := make([]string, 0, len(j))
	for name, c := range j {
		if strings.HasPrefix(reqPath, c.path) && (c.persistent || !persistentOnly) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + "=" + j[name].value
	}
	return strings.Join(parts, "; ")
}

// site talks to one service as browsers do.
type site struct {
	base   string // http://127.0.0.1:port
	client *http.Client
}

func newSite(base string) *site {
	return &site{base: base, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true},
		// Redirects are followed by hand, so every hop's cookies are seen.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is the last answer of a visit, after its redirects.
type page struct {
	status int
	body   string
	hops   []int // the statuses of the redirects followed
}

// visit requests path (with form, a POST) and follows redirects as a
// browser does, keeping cookies in jar.
func (s *site) visit(ctx context.Context, jar cookieJar, method, path string, form url.Values) (page, error) {
	var pg page
	for range 8 {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
		if err != nil {
			return pg, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if c := jar.header(path, false); c != "" {
			req.Header.Set("Cookie", c)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return pg, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return pg, err
		}
		jar.update(resp)
		switch resp.StatusCode {
		case http.StatusFound, http.StatusSeeOther, http.StatusMovedPermanently:
			pg.hops = append(pg.hops, resp.StatusCode)
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || loc.IsAbs() {
				return pg, fmt.Errorf("%s %s: redirect to %q", method, path, resp.Header.Get("Location"))
			}
			path, method, form = loc.RequestURI(), http.MethodGet, nil
			continue
		}
		pg.status, pg.body = resp.StatusCode, string(raw)
		return pg, nil
	}
	return pg, fmt.Errorf("%s %s: too many redirects", method, path)
}

// newBrowser makes a browser's first visit (the cookie check's redirects
// included), then, when dismiss is set, dismisses the demo notice with the
// page's CSRF token as a person clicking "Got it" would.
func (s *site) newBrowser(ctx context.Context, dismiss bool) (browser, error) {
	jar := cookieJar{}
	pg, err := s.visit(ctx, jar, http.MethodGet, "/", nil)
	if err != nil {
		return browser{}, err
	}
	if pg.status != http.StatusOK || len(pg.hops) != 3 {
		return browser{}, fmt.Errorf("first visit: status %d after redirects %v, want 200 after / → /catalog/ → ?cookies=check → /catalog/", pg.status, pg.hops)
	}
	b := browser{}
	if b.visits, err = visitsShown(pg.body); err != nil {
		return b, fmt.Errorf("first visit: %w", err)
	}
	if b.visits != 1 {
		return b, fmt.Errorf("first visit shows %d visits, want 1", b.visits)
	}
	if dismiss {
		m := tokenPattern.FindStringSubmatch(pg.body)
		if m == nil {
			return b, fmt.Errorf("first visit: no demo notice with a CSRF token in the page")
		}
		pg, err = s.visit(ctx, jar, http.MethodPost, "/catalog/notice/dismiss", url.Values{"csrfmiddlewaretoken": {m[1]}})
		if err != nil {
			return b, err
		}
		if pg.status != http.StatusOK || len(pg.hops) != 1 || pg.hops[0] != http.StatusSeeOther {
			return b, fmt.Errorf("dismissing the notice: status %d after redirects %v, want 303 then 200", pg.status, pg.hops)
		}
		if strings.Contains(pg.body, noticeMarker) {
			return b, fmt.Errorf("the notice still shows after it was dismissed")
		}
		if b.visits, err = visitsShown(pg.body); err != nil {
			return b, fmt.Errorf("after dismissing: %w", err)
		}
		b.dismissed = true
	}
	b.sessionID = jar["sessionid"].value
	b.csrfToken = jar["csrftoken"].value
	b.cookie = jar.header("/catalog/", true)
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

// newBrowsers creates n browsers, a few at a time.
func (s *site) newBrowsers(ctx context.Context, n int, dismiss bool) ([]browser, error) {
	out := make([]browser, n)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := s.newBrowser(ctx, dismiss)
				if err != nil {
					select {
					case errs <- fmt.Errorf("browser %d: %w", i, err):
					default:
					}
					continue
				}
				out[i] = b
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			errs <- err
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return out, ctx.Err()
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
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				n, err := s.revisit(ctx, bs[i])
				if err != nil {
					n = -1
					mu.Lock()
					errs = append(errs, fmt.Errorf("browser %d: %w", i, err))
					mu.Unlock()
				}
				counts[i] = n
			}
		}()
	}
	for i := range bs {
		next <- i
	}
	close(next)
	wg.Wait()
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
		sz.StatsBytes = float64(statInt(after, "bytes")-statInt(before, "bytes")) / float64(len(bs))
		sz.StatsItems = float64(statInt(after, "curr_items")-statInt(before, "curr_items")) / float64(len(bs))
	}
	return sz, nil
}
