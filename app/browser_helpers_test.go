//go:build !noembeddeddb

package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/audits"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/locallibrary/locallibrary/app"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// browserTestTimeout bounds one browser test: the browser, its site and
// every action in it.
const browserTestTimeout = 60 * time.Second

// chromiumPath returns the Chromium to drive, skipping the test without one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testkit.Unavailable(t, "browser tests need chromium on PATH (apt-get install chromium chromium-driver): %v", err)
	}
	return path
}

// testSecretKey signs the CSRF tokens of every site a test starts.
const testSecretKey = "test-secret-key-shared-by-the-replicas-0123456789"

// uniqueKeyPrefix keeps each test's sessions apart in a shared memcached.
func uniqueKeyPrefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "llbt-" + hex.EncodeToString(b[:]) + ":"
}

// freePort asks the kernel for a free port on 127.0.0.1. app.Run does not
// report the port it listens on, so the test chooses one.
func freePort(t *testing.T) string { return testkit.MustFreeAddr(t) }

// startSite runs the whole service, as main does, on a free port of
// 127.0.0.1 with the embedded demo catalog, and returns its base URL once
// /livez answers. memcached "" keeps sessions in the process. The site
// stops when the test ends.
func startSite(t *testing.T, memcached, keyPrefix string) string {
	t.Helper()
	return startSiteWith(t, memcached, keyPrefix, nil)
}

// startSiteWith is startSite with more settings.
func startSiteWith(t *testing.T, memcached, keyPrefix string, settings map[string]string) string {
	t.Helper()
	addr, metricsAddr := freePort(t), freePort(t)
	env := map[string]string{
		"LOCALLIBRARY_HTTP_ADDR":            addr,
		"LOCALLIBRARY_METRICS_ADDR":         metricsAddr,
		"LOCALLIBRARY_SECRET_KEY":           testSecretKey, // the same on every replica
		"LOCALLIBRARY_MEMCACHED_SERVERS":    memcached,
		"LOCALLIBRARY_MEMCACHED_KEY_PREFIX": keyPrefix,
		"LOCALLIBRARY_SHUTDOWN_DRAIN":       "1ms",
		"LOCALLIBRARY_SHUTDOWN_TIMEOUT":     "2s",
		// These tests are about what a browser sees, not about latency: on
		// a busy two-CPU machine running Chromium, memcached's default
		// 100ms socket timeout is missed now and then, the store then skips
		// the node for a while, and a session write is silently lost.
		"LOCALLIBRARY_MEMCACHED_TIMEOUT": "1s",
		"LOCALLIBRARY_QUERY_TIMEOUT":     "5s",
	}
	for k, v := range settings {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := new(testkit.LogBuffer)
	stopped := make(chan struct{})
	var runErr error
	go func() {
		defer close(stopped)
		runErr = app.Run(ctx, nil, func(key string) string { return env[key] }, logs)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("session-store metrics of the site at %s:\n%s", addr, sessionMetrics(metricsAddr))
		}
		cancel()
		select {
		case <-stopped:
			if runErr != nil {
				t.Errorf("site %s: Run returned %v", addr, runErr)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("site %s did not stop within 10s of its context ending", addr)
		}
		if t.Failed() {
			t.Logf("log of the site at %s:\n%s", addr, logs)
		}
	})

	base := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	ticker := time.NewTicker(20 * time.Millisecond) // a readiness poll, not a sleep
	defer ticker.Stop()
	for {
		resp, err := client.Get(base + "/livez")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-stopped:
			t.Fatalf("site %s stopped before it was live: %v\n%s", addr, runErr, logs)
		case <-ticker.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s not live after 30s (last error %v)\n%s", addr, err, logs)
		}
	}
}

// sessionMetrics picks the session store's errors and latencies out of the
// site's /metrics (at metricsAddr), to tell a slow or failing memcached
// from a site bug.
func sessionMetrics(addr string) string {
	m, err := testkit.Scrape(context.Background(), nil, "http://"+addr+"/metrics")
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, s := range m {
		switch {
		case s.Name == "locallibrary_session_store_errors_total",
			s.Name == "locallibrary_visit_count_unavailable_total",
			s.Name == "locallibrary_session_store_duration_seconds_count",
			s.Name == "locallibrary_session_store_duration_seconds_bucket" && s.Labels["le"] == "0.1":
			lines = append(lines, fmt.Sprintf("%s%v %g", s.Name, s.Labels, s.Value))
		}
	}
	return strings.Join(lines, "\n")
}

// browser is one headless Chromium with a fresh profile and one tab. It
// records every console error, uncaught exception, error in the browser's
// log and Content-Security-Policy violation of the pages it shows, and the
// test fails if any is left unchecked when it ends.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	url      string   // the main frame's document, for the messages
	problems []string // not yet taken by takeProblems
	issues   []string // other DevTools issues, only logged
}

type browserOptions struct {
	// blockCookies starts the browser with the content setting "block
	// all cookies", as a visitor can choose in chrome://settings/cookies.
	blockCookies bool
}

// newBrowser starts Chromium for the test, with the flags of the workplace.
// The browser, and with it every action, ends after browserTestTimeout.
func newBrowser(t *testing.T, opt browserOptions) *browser {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir()
	if opt.blockCookies {
		// Preferences of the "Default" profile, read at start: the
		// content setting 2 is "block" for every site.
		prefs := `{"profile":{"default_content_setting_values":{"cookies":2}}}`
		if err := os.MkdirAll(filepath.Join(profile, "Default"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // the tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	b := &browser{t: t}
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.record))
	t.Cleanup(cancelTab)
	b.ctx = tabCtx

	// The first call starts the browser; Audits reports CSP violations as
	// issues, beside the console message Chromium writes for them.
	if _, err := chromedp.Call(tabCtx, audits.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { // registered last, so it runs while the browser is still up
		if ctx.Err() == nil {
			b.expectNoProblems("the end of the test")
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, issue := range b.issues {
			t.Logf("DevTools issue (not failing the test): %s", issue)
		}
	})
	return b
}

// record runs in chromedp's read loop for every event of the tab: it must
// be quick and must not call the browser.
func (b *browser) record(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *page.EventFrameNavigated:
		if ev.Frame != nil && ev.Frame.ParentID == "" {
			b.mu.Lock()
			b.url = ev.Frame.URL
			b.mu.Unlock()
		}
		return
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, arg := range ev.Args {
			if arg.Description != "" {
				parts = append(parts, arg.Description)
			} else {
				parts = append(parts, string(arg.Value))
			}
		}
		problem = fmt.Sprintf("console.%s(%s)", ev.Type, strings.Join(parts, ", "))
	case *runtime.EventExceptionThrown:
		problem = "uncaught exception: " + ev.ExceptionDetails.Text
		if ex := ev.ExceptionDetails.Exception; ex != nil {
			problem += " " + ex.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		problem = fmt.Sprintf("browser log error (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	case *audits.EventIssueAdded:
		issue := ev.Issue
		if issue.Code == audits.InspectorIssueCodeContentSecurityPolicyIssue {
			problem = "CSP violation"
			if d := issue.Details.ContentSecurityPolicyIssueDetails; d != nil {
				problem = fmt.Sprintf("CSP violation of %q (%s) blocking %q", d.ViolatedDirective,
					d.ContentSecurityPolicyViolationType, d.BlockedURL)
			}
			break
		}
		b.mu.Lock()
		b.issues = append(b.issues, fmt.Sprintf("%s on %s", issue.Code, b.url))
		b.mu.Unlock()
		return
	default:
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf("%s (on %s)", problem, b.url))
}

// takeProblems returns the problems recorded so far and forgets them.
// A round trip to the tab first makes sure every event the browser sent
// before it has been recorded.
func (b *browser) takeProblems() []string {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](`0`)); err != nil {
		b.t.Fatalf("reach the tab: %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	problems := b.problems
	b.problems = nil
	return problems
}

// expectNoProblems fails the test for every console error or CSP
// violation recorded since the last check.
func (b *browser) expectNoProblems(where string) {
	b.t.Helper()
	for _, p := range b.takeProblems() {
		b.t.Errorf("after %s: %s", where, p)
	}
}

// open navigates to url, waits for the page to load and returns its
// document's response (the last one, after redirects).
func (b *browser) open(url string) *network.Response {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	return resp
}

// reload reloads the page and waits for it to load.
func (b *browser) reload() *network.Response {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Reload())
	if err != nil {
		b.t.Fatalf("reload: %v", err)
	}
	return resp
}

// click clicks the visible element sel with the mouse, as a person would,
// and waits for the page it leads to.
func (b *browser) click(sel string) *network.Response {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	return resp
}

// do runs actions that return nothing.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element that matches sel; the
// element must be on the page.
func (b *browser) text(sel string) string {
	b.t.Helper()
	if b.count(sel) == 0 {
		b.t.Fatalf("no %s on %s", sel, b.location())
	}
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// count is how many elements match sel now; it does not wait.
func (b *browser) count(sel string) int {
	b.t.Helper()
	return evaluate[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// location is the address of the page in the tab.
func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("read the location: %v", err)
	}
	return loc
}

// cookies are the names and values of the cookies the browser would send
// to url.
func (b *browser) cookies(url string) map[string]string {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		b.t.Fatalf("read the cookies for %s: %v", url, err)
	}
	out := make(map[string]string, len(res.Cookies))
	for _, c := range res.Cookies {
		out[c.Name] = c.Value
	}
	return out
}

// evaluate runs a JavaScript expression in the page through DevTools (the
// site itself has no script, and its CSP allows none inline) and decodes
// the result.
func evaluate[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// visitsText is the home page's sentence for n visits.
func visitsText(n int) string {
	if n == 1 {
		return "You have visited this page 1 time."
	}
	return fmt.Sprintf("You have visited this page %d times.", n)
}

// expectVisits checks the home page's visit count.
func (b *browser) expectVisits(n int) {
	b.t.Helper()
	if got, want := b.text(".session-box p"), visitsText(n); got != want {
		b.t.Errorf("on %s the visit count reads %q, want %q", b.location(), got, want)
	}
}

// noticeShown tells whether the home page shows the demo notice.
func (b *browser) noticeShown() bool {
	b.t.Helper()
	return b.count("aside.demo-notice") > 0
}
