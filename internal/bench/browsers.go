package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// browsersPerSet is how many returning browsers a set has: wrk rotates
// through them, and each one's count is read after every home run.
const browsersPerSet = 1000

// group is the returning browsers of one build on one memcached set, and
// the forms' tokens harvested there.
type group struct {
	dismissed, notice *browserSet
	forms             []formPost // session ids not stored, with their CSRF tokens
}

// browserSet is browsers whose visits are checked together: after a run,
// the counts their pages show must have grown by exactly the pages the
// service says it counted.
type browserSet struct {
	cookies []string // the Cookie header of each one's returning visit
	sum     int64    // of their counts when last read
	known   bool     // sum is current: nothing has visited since
}

// formPost is one form submission: a session cookie and the form's body.
type formPost struct{ cookie, body string }

var visitsPattern = regexp.MustCompile(`You have visited this page (\d+) times?\.`)

const (
	noticeMarker      = `action="` + dismissAction + `"`
	unavailableMarker = `class="visits-unavailable"`
)

// visitsShown is the count in a home page.
func visitsShown(body string) (int, error) {
	m := visitsPattern.FindStringSubmatch(body)
	if m == nil {
		if strings.Contains(body, unavailableMarker) {
			return 0, errors.New("the page says the visit count is unavailable")
		}
		return 0, errors.New("no visit count in the page")
	}
	return strconv.Atoi(m[1])
}

// transport is shared by the bench's own requests (not the load).
var transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}

// siteBrowser makes a browser's first visit, through the cookie test's
// redirects, and, when dismiss is set, clicks "Got it" as a person would
// (the form's CSRF token included). It returns the browser's returning
// Cookie header (persistent cookies only, as after a restart) and the
// count last shown.
func siteBrowser(ctx context.Context, base string, dismiss bool) (string, int, error) {
	br := testkit.NewBrowser(base, transport)
	pg, err := br.Get(ctx, "/")
	if err != nil {
		return "", 0, err
	}
	if pg.Status != http.StatusOK || len(pg.Hops) != 3 {
		return "", 0, fmt.Errorf("first visit: status %d after redirects %v, want 200 after / → /catalog/ → ?cookies=check → /catalog/", pg.Status, pg.Hops)
	}
	if dismiss {
		if pg, err = br.Submit(ctx, pg, dismissAction); err != nil {
			return "", 0, fmt.Errorf("Got it: %w", err)
		}
		if pg.Status != http.StatusOK || strings.Contains(pg.Body, noticeMarker) {
			return "", 0, fmt.Errorf("Got it: status %d after %v, notice still shown: %v", pg.Status, pg.Hops, strings.Contains(pg.Body, noticeMarker))
		}
	}
	n, err := visitsShown(pg.Body)
	if br.Jar.Value("sessionid") == "" {
		return "", 0, errors.New("no sessionid cookie after the first visit")
	}
	return br.Jar.Header("/catalog/", true), n, err
}

// fiberBrowser is siteBrowser for fibersession: its first page starts the
// session, and "Got it" (no CSRF token there) dismisses the notice.
func fiberBrowser(ctx context.Context, base string, _ bool) (string, int, error) {
	br := testkit.NewBrowser(base, transport)
	if _, err := br.Get(ctx, "/catalog/"); err != nil {
		return "", 0, err
	}
	pg, err := br.Do(ctx, http.MethodPost, dismissAction, url.Values{})
	if err != nil {
		return "", 0, err
	}
	if pg.Status != http.StatusOK || strings.Contains(pg.Body, noticeMarker) {
		return "", 0, fmt.Errorf("fibersession Got it: status %d, notice still shown: %v", pg.Status, strings.Contains(pg.Body, noticeMarker))
	}
	n, err := visitsShown(pg.Body)
	return br.Jar.Header("/catalog/", true), n, err
}

// newSet makes n browsers with newBrowser.
func newSet(ctx context.Context, n int, base string, dismiss bool,
	newBrowser func(ctx context.Context, base string, dismiss bool) (string, int, error)) (*browserSet, error) {
	set := &browserSet{cookies: make([]string, n), known: true}
	var sum atomic.Int64
	err := each(ctx, n, func(i int) error {
		cookie, count, err := newBrowser(ctx, base, dismiss)
		set.cookies[i] = cookie
		sum.Add(int64(count))
		if err != nil {
			return fmt.Errorf("browser %d on %s: %w", i, base, err)
		}
		return nil
	})
	set.sum = sum.Load()
	return set, err
}

// each calls fn for every index below n, 16 at a time, and returns the
// first error.
func each(ctx context.Context, n int, fn func(i int) error) error {
	var mu sync.Mutex
	var first error
	testkit.Each(ctx, n, 16, func(i int) {
		if err := fn(i); err != nil {
			mu.Lock()
			first = cmp.Or(first, err)
			mu.Unlock()
		}
	})
	return cmp.Or(first, ctx.Err())
}

// formPosts harvests n session ids with their CSRF tokens from the Forget
// me page of a browser without a cookie: the page gives it an id (not
// stored until a form needs it) and the form the token for that id, which
// both forms check.
func formPosts(ctx context.Context, base string, n int) ([]formPost, error) {
	out := make([]formPost, n)
	return out, each(ctx, n, func(i int) error {
		br := testkit.NewBrowser(base, transport)
		pg, err := br.Get(ctx, forgetAction)
		if err != nil {
			return err
		}
		vals, err := testkit.FormValues(pg.Body, forgetAction)
		if err == nil && (br.Jar.Value("sessionid") == "" || len(vals) == 0) {
			err = errors.New("no session id or no token")
		}
		if err != nil {
			return fmt.Errorf("the Forget me form on %s: %w", base, err)
		}
		out[i] = formPost{cookie: "sessionid=" + br.Jar.Value("sessionid"), body: vals.Encode()}
		return nil
	})
}

// readCount loads a returning browser's home page once and returns the
// count it shows.
func readCount(ctx context.Context, base, cookie string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/catalog/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Cookie", cookie)
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /catalog/: %s", resp.Status)
	}
	return visitsShown(string(body))
}

// readSum reads every browser's count once (which counts a visit each)
// and keeps the sum; a failed read leaves the sum unknown.
func (set *browserSet) readSum(ctx context.Context, base string) error {
	var sum atomic.Int64
	err := each(ctx, len(set.cookies), func(i int) error {
		n, err := readCount(ctx, base, set.cookies[i])
		sum.Add(int64(n))
		return err
	})
	set.sum, set.known = sum.Load(), err == nil
	return err
}

// tabsResult is the concurrent-tabs check of one session layer.
type tabsResult struct {
	Layer    string `json:"layer"`
	Browsers int    `json:"browsers"`
	Tabs     int    `json:"tabs"`     // pages of one browser loaded at once
	Expected int64  `json:"expected"` // visits made
	Stored   int64  `json:"stored"`   // visits the counts grew by
}

// tabsCheck has each browser load the home page in tabs tabs at once,
// then once more, and compares the count's growth with the visits made:
// a read-modify-write of the count loses the visits of tabs that read
// before another one wrote.
func tabsCheck(ctx context.Context, layer, base string, set *browserSet, tabs int) (tabsResult, error) {
	r := tabsResult{Layer: layer, Browsers: len(set.cookies), Tabs: tabs}
	for _, cookie := range set.cookies {
		before, err := readCount(ctx, base, cookie)
		if err != nil {
			return r, fmt.Errorf("%s: %w", layer, err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range tabs {
			wg.Go(func() {
				<-start
				_, _ = readCount(ctx, base, cookie)
			})
		}
		close(start)
		wg.Wait()
		after, err := readCount(ctx, base, cookie)
		if err != nil {
			return r, fmt.Errorf("%s: %w", layer, err)
		}
		r.Expected += int64(tabs + 1)
		r.Stored += int64(after - before)
	}
	return r, nil
}

// makeBrowsers makes each build's browsers and form tokens, and
// fibersession's browsers.
func (b *bench) makeBrowsers(ctx context.Context) error {
	for _, bd := range b.builds {
		if s := bd.anyService(); s != nil {
			base := "http://" + s.Addr
			g := &group{}
			var err error
			if g.dismissed, err = newSet(ctx, browsersPerSet, base, true, siteBrowser); err != nil {
				return err
			}
			if b.wantsNotice() {
				if g.notice, err = newSet(ctx, browsersPerSet, base, false, siteBrowser); err != nil {
					return err
				}
			}
			if b.wants(formKind) {
				if g.forms, err = formPosts(ctx, base, browsersPerSet); err != nil {
					return err
				}
			}
			bd.single = g
		}
		if len(bd.fleet) > 0 {
			set, err := newSet(ctx, browsersPerSet, "http://"+bd.lbAddr, true, siteBrowser)
			if err != nil {
				return err
			}
			bd.fleetGroup = &group{dismissed: set}
		}
	}
	if b.fiber != nil {
		set, err := newSet(ctx, browsersPerSet, b.fiber.base(), true, fiberBrowser)
		if err != nil {
			return err
		}
		b.fiber.group = &group{dismissed: set}
	}
	b.logf("browsers made")
	return nil
}

func (b *bench) wantsNotice() bool {
	for _, name := range b.o.targets {
		if s, _ := specOf(name); s.notice {
			return true
		}
	}
	return false
}
