//go:build !noembeddeddb

package app_test

// Tests in a real browser: headless Chromium, driven by chromedp, against
// the whole service started by app.Run with the embedded demo catalog.
// They need chromium on PATH; the sessions live in the memcached named by
// LOCALLIBRARY_TEST_MEMCACHED when it is set. Without them the tests skip,
// unless LOCALLIBRARY_TEST_REQUIRE_SERVICES=1.

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// The demo catalog's size, the same on every start.
const (
	demoBooks   = 150
	demoAuthors = 40
)

// TestBrowserVisitCount: a browser that accepts cookies passes the cookie
// check on its first visit and sees its count go 1, 2, 3 as it reloads.
func TestBrowserVisitCount(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))

	resp := b.open(site + "/")
	if resp.Status != 200 || resp.URL != site+"/catalog/" {
		t.Fatalf("/ ended on %s with status %d, want %s/catalog/ with 200", resp.URL, resp.Status, site)
	}
	for visit := 1; visit <= 3; visit++ {
		if visit > 1 {
			b.reload()
		}
		b.expectVisits(visit)
	}
	counts := b.text(".counts")
	for _, want := range []string{fmt.Sprintf("Books: %d", demoBooks), fmt.Sprintf("Authors: %d", demoAuthors)} {
		if !strings.Contains(counts, want) {
			t.Errorf("the counts read %q, want them to include %q", counts, want)
		}
	}
	cookies := b.cookies(site + "/catalog/")
	if cookies["sessionid"] == "" {
		t.Errorf("no sessionid cookie after three visits; cookies: %v", cookies)
	}
}

// TestBrowserNoticeAcrossReplicas: "Got it" hides the demo notice for the
// session, and another replica sharing the memcached sees the same session.
// Cookies are scoped by host, not port, so 127.0.0.1:A and 127.0.0.1:B
// share them in the browser: the test checks that too, since it is what
// lets one browser stand in for a load balancer here.
func TestBrowserNoticeAcrossReplicas(t *testing.T) {
	memcached := testkit.Require(t, testkit.EnvMemcached)
	prefix := uniqueKeyPrefix(t)
	b := newBrowser(t, browserOptions{})
	replicaA := startSite(t, memcached, prefix)
	replicaB := startSite(t, memcached, prefix)

	b.open(replicaA + "/catalog/")
	b.expectVisits(1)
	if !b.noticeShown() {
		t.Fatalf("a new session sees no demo notice on %s", replicaA)
	}
	if got := b.text("aside.demo-notice p"); !strings.HasPrefix(got, "This catalog is a demo:") {
		t.Errorf("notice reads %q", got)
	}

	resp := b.click("aside.demo-notice button[type=submit]")
	if resp.Status != 200 || resp.URL != replicaA+"/catalog/" {
		t.Fatalf("Got it ended on %s with status %d, want %s/catalog/ with 200", resp.URL, resp.Status, replicaA)
	}
	if b.noticeShown() {
		t.Errorf("the notice is still shown after Got it")
	}
	b.expectVisits(2) // the redirect back is a visit

	idA := b.cookies(replicaA + "/catalog/")["sessionid"]
	idB := b.cookies(replicaB + "/catalog/")["sessionid"]
	if idA == "" || idA != idB {
		t.Fatalf("the browser would send sessionid %q to replica A and %q to replica B: cookies are not shared across ports", idA, idB)
	}

	steps := []struct {
		name string
		base string
	}{
		{"replica B", replicaB},
		{"replica B again", replicaB},
		{"back on replica A", replicaA},
	}
	for i, step := range steps {
		b.open(step.base + "/catalog/")
		b.expectVisits(3 + i)
		if b.noticeShown() {
			t.Errorf("%s shows the dismissed notice", step.name)
		}
	}
}

// TestBrowserPageSizePreference: a page size chosen in the list's form is
// remembered by the session and applies to later list pages, the pager's
// links included.
func TestBrowserPageSizePreference(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))

	b.open(site + "/catalog/books/")
	b.expectList("the first visit", 10, "10", "Page 1 of 15.")

	b.do("choose 25 per page", chromedp.SetValue(chromedp.ID("per_page"), "25"))
	resp := b.click("form.per-page button[type=submit]")
	if u, err := url.Parse(resp.URL); err != nil || u.Path != "/catalog/books/" || u.Query().Get("per_page") != "25" {
		t.Errorf("Show went to %s, want /catalog/books/?per_page=25", resp.URL)
	}
	b.expectList("the form's answer", 25, "25", "Page 1 of 6.")

	tests := []struct {
		name, path string
		items      int
		pager      string
	}{
		{"books without the parameter", "/catalog/books/", 25, "Page 1 of 6."},
		{"authors without the parameter", "/catalog/authors/", 25, "Page 1 of 2."},
		{"the last page of books", "/catalog/books/?page=last", demoBooks - 5*25, "Page 6 of 6."},
	}
	for _, tt := range tests {
		b.open(site + tt.path)
		b.expectList(tt.name, tt.items, "25", tt.pager)
	}

	b.open(site + "/catalog/books/")
	resp = b.click(`a[rel="next"]`)
	if u, err := url.Parse(resp.URL); err != nil || u.Query().Get("page") != "2" || u.Query().Get("per_page") != "25" {
		t.Errorf("the next link went to %s, want page=2 and per_page=25", resp.URL)
	}
	b.expectList("the next page", 25, "25", "Page 2 of 6.")
	b.click(`a[rel="prev"]`)
	b.expectList("the previous page", 25, "25", "Page 1 of 6.")
}

// expectList checks a list page: how many items, the page size the form
// shows as chosen, and the pager's text.
func (b *browser) expectList(what string, items int, selected, pager string) {
	b.t.Helper()
	if got := b.count(".item-list > li"); got != items {
		b.t.Errorf("%s (%s): %d items, want %d", what, b.location(), got, items)
	}
	if got := evaluate[string](b, `document.querySelector("#per_page option:checked").value`); got != selected {
		b.t.Errorf("%s: %s per page is selected, want %s", what, got, selected)
	}
	if got := b.text(".page-current"); got != pager {
		b.t.Errorf("%s: the pager reads %q, want %q", what, got, pager)
	}
}

// TestBrowserForgetMe: "Forget me…" leads to a page whose button ends the
// session: the count restarts at 1, the notice is back and the page size
// is forgotten.
func TestBrowserForgetMe(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))

	b.open(site + "/catalog/books/?per_page=50")
	b.open(site + "/catalog/")
	b.reload()
	b.expectVisits(2)
	b.click("aside.demo-notice button[type=submit]")
	b.expectVisits(3)
	if b.noticeShown() {
		t.Fatalf("the notice is still shown after Got it")
	}
	b.open(site + "/catalog/books/")
	b.expectList("books before Forget me", 50, "50", "Page 1 of 3.")
	b.open(site + "/catalog/")
	b.expectVisits(4)
	before := b.cookies(site + "/catalog/")["sessionid"]

	resp := b.click(".forget-link a")
	if resp.Status != 200 || resp.URL != site+"/catalog/forget/" {
		t.Fatalf("Forget me… went to %s (%d), want %s/catalog/forget/", resp.URL, resp.Status, site)
	}
	if got := b.text("h1"); got != "Forget me" {
		t.Errorf("the confirmation page's heading is %q", got)
	}
	resp = b.click("button.button-danger")
	if resp.Status != 200 || resp.URL != site+"/catalog/" {
		t.Fatalf("the Forget me button ended on %s (%d), want %s/catalog/", resp.URL, resp.Status, site)
	}
	b.expectVisits(1)
	if !b.noticeShown() {
		t.Errorf("the notice is not back after Forget me")
	}
	after := b.cookies(site + "/catalog/")["sessionid"]
	if after == "" || after == before {
		t.Errorf("sessionid was %q and is %q after Forget me: want a new one", before, after)
	}
	b.reload()
	b.expectVisits(2)
	// The new session's CSRF token works: the notice can be dismissed again.
	b.click("aside.demo-notice button[type=submit]")
	b.expectVisits(3)
	if b.noticeShown() {
		t.Errorf("the notice is still shown after Got it in the new session")
	}

	b.open(site + "/catalog/books/")
	b.expectList("books after Forget me", 10, "10", "Page 1 of 15.")
}

// TestBrowserBackAfterForgetMe: after Forget me, the back button returns
// to the confirmation page (no-store, so fetched again with the new
// session's token), and its button works again instead of refusing a
// stale form.
func TestBrowserBackAfterForgetMe(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))

	b.open(site + "/catalog/")
	b.reload()
	b.expectVisits(2)
	b.click(".forget-link a")
	b.click("button.button-danger")
	b.expectVisits(1)
	resp, err := chromedp.RunResponse(b.ctx, chromedp.NavigateBack())
	if err != nil {
		t.Fatalf("back: %v", err)
	}
	if resp == nil || resp.Status != 200 || resp.URL != site+"/catalog/forget/" {
		t.Fatalf("back went to %+v, want the Forget me page fetched again", resp)
	}
	resp = b.click("button.button-danger")
	if resp.Status != 200 || resp.URL != site+"/catalog/" {
		t.Fatalf("Forget me after the back button ended on %s (%d: %q), want %s/catalog/", resp.URL, resp.Status, b.text("h1"), site)
	}
	b.expectVisits(1)
}

// TestBrowserCookiesRefused: a browser set to block all cookies is told
// why its visits are not counted, and is shown no count.
func TestBrowserCookiesRefused(t *testing.T) {
	b := newBrowser(t, browserOptions{blockCookies: true})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))

	for _, visit := range []string{"first visit", "second visit"} {
		resp := b.open(site + "/catalog/")
		if resp.Status != 200 || resp.URL != site+"/catalog/?cookies=check" {
			t.Errorf("%s ended on %s (%d), want %s/catalog/?cookies=check", visit, resp.URL, resp.Status, site)
		}
		const hint = "Your browser is not accepting cookies, so visits can't be counted."
		if got := b.text(".cookies-refused"); got != hint {
			t.Errorf("%s: the hint reads %q, want %q", visit, got, hint)
		}
		if body := b.text("main"); strings.Contains(body, "You have visited") {
			t.Errorf("%s: a visit count is shown to a browser without cookies", visit)
		}
		if b.noticeShown() || b.count(".forget-link") > 0 {
			t.Errorf("%s: the notice or the Forget me link is shown to a browser without cookies", visit)
		}
	}
	if cookies := b.cookies(site + "/catalog/"); len(cookies) > 0 {
		t.Errorf("the browser kept cookies although it blocks them: %v", cookies)
	}

	// The page size still applies where it is asked for, but is not kept.
	b.open(site + "/catalog/books/?per_page=25")
	b.expectList("books with per_page=25", 25, "25", "Page 1 of 6.")
	b.open(site + "/catalog/books/")
	b.expectList("books without the parameter", 10, "10", "Page 1 of 15.")
}

// TestBrowserNoConsoleErrors visits every kind of page and uses every form,
// failing on any console error, uncaught exception, error in the browser's
// log or Content-Security-Policy violation. It first checks that such a
// violation would be caught.
func TestBrowserNoConsoleErrors(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))

	b.open(site + "/catalog/books/")
	b.expectNoProblems("opening the book list")
	// An inline script added by DevTools is still subject to the page's
	// CSP: the browser refuses it, and the recorder must see that.
	b.do("plant an inline script",
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.createElement("script"); s.textContent = "window.ran = 1"; document.body.append(s) })()`))
	if ran := evaluate[bool](b, `window.ran === 1`); ran {
		t.Fatalf("an inline script ran: the page's CSP does not forbid it")
	}
	// Chromium reports it twice: in its log (source "security") and as a
	// DevTools issue. Each alone must be enough to fail a page.
	planted := strings.Join(b.takeProblems(), "\n")
	for _, want := range []string{"browser log error (security): ", "CSP violation of \"script-src-elem\""} {
		if !strings.Contains(planted, want) {
			t.Errorf("a refused inline script was not recorded as %q; recorded:\n%s", want, planted)
		}
	}

	type step struct {
		name   string
		path   string                         // opened when set
		before chromedp.Action[chromedp.Void] // else run, if set, and then
		sel    string                         // this is clicked
	}
	steps := []step{
		{name: "/", path: "/"},
		{name: "Got it", sel: "aside.demo-notice button[type=submit]"},
		{name: "the home page again", path: "/catalog/"},
		{name: "the book list", path: "/catalog/books/"},
		{name: "Show 50 per page", before: chromedp.SetValue(chromedp.ID("per_page"), "50"), sel: "form.per-page button[type=submit]"},
		{name: "the next page of books", sel: `a[rel="next"]`},
		{name: "a book", sel: ".item-list a"},
		{name: "its author", sel: `main a[href^="/catalog/author/"]`},
		{name: "the author list", path: "/catalog/authors/"},
		{name: "an author", sel: ".item-list a"},
		{name: "a book of the author", sel: `main a[href^="/catalog/book/"]`},
		{name: "the sidebar's Home link", sel: `.sidebar-nav a[href="/catalog/"]`},
		{name: "Forget me…", sel: ".forget-link a"},
		{name: "the Forget me button", sel: "button.button-danger"},
	}
	for _, s := range steps {
		if s.path != "" {
			if resp := b.open(site + s.path); resp.Status != 200 {
				t.Errorf("%s: status %d", s.name, resp.Status)
			}
		} else {
			if b.count(s.sel) == 0 {
				t.Fatalf("%s: nothing matches %s on %s", s.name, s.sel, b.location())
			}
			if s.before != nil {
				b.do(s.name, s.before)
			}
			if resp := b.click(s.sel); resp.Status != 200 {
				t.Errorf("%s: status %d on %s", s.name, resp.Status, resp.URL)
			}
		}
		b.expectNoProblems(s.name + " (" + b.location() + ")")
	}
}

// TestBrowserScreenshots saves the pages at desktop and phone sizes for a
// person to look at, in a folder that outlives the test, and checks that
// nothing makes a phone's page wider than its screen. At 1280 and 390 px
// it also saves what the screen shows with some elements focused from the
// keyboard: the skip link, the current section's link, a few controls.
func TestBrowserScreenshots(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSite(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t))
	dir, err := os.MkdirTemp("", "locallibrary-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)

	viewports := []struct {
		name    string
		emulate chromedp.Action[chromedp.Void]
		width   int
		phone   bool
		focus   bool // save the focused views too
	}{
		{"desktop", chromedp.EmulateViewport(1280, 900), 1280, false, true},
		{"phone", chromedp.Emulate(device.IPhone13), 390, true, true}, // 390×844, mobile, touch
		{"small-phone", chromedp.EmulateViewport(320, 568, chromedp.EmulateMobile, chromedp.EmulateScale(2)), 320, true, false},
	}
	pages := []struct {
		name, path string
		focus      []string // elements to show focused, one screenshot each
	}{
		{"home", "/catalog/", []string{".skip", "aside.demo-notice button", ".forget-link a"}}, // with the demo notice, never dismissed here
		{"books", "/catalog/books/?page=2", []string{".sidebar-nav a[aria-current]", `a[rel="next"]`, "#per_page"}},
		{"book", "/catalog/book/1", []string{`main a[href^="/catalog/author/"]`}},
		{"forget", "/catalog/forget/", []string{"button.button-danger"}},
	}
	for _, vp := range viewports {
		b.do("emulate "+vp.name, vp.emulate)
		for _, p := range pages {
			b.open(site + p.path)
			if got := evaluate[int](b, `window.innerWidth`); got != vp.width {
				t.Errorf("%s: the window is %d px wide, want %d", vp.name, got, vp.width)
			}
			png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
			if err != nil || len(png) == 0 {
				t.Fatalf("%s at %s: screenshot: %v", p.name, vp.name, err)
			}
			path := filepath.Join(dir, p.name+"-"+vp.name+".png")
			if err := os.WriteFile(path, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s at %s: %s", p.name, vp.name, path)
			for i, sel := range p.focus {
				if !vp.focus {
					break
				}
				// A Tab first, so the page is used from the keyboard and
				// the browser draws the focus ring of what is focused next.
				b.do("focus "+sel, chromedp.KeyEvent("\t"),
					chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).focus()`, sel)))
				png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
				if err != nil {
					t.Fatalf("%s at %s with %s focused: screenshot: %v", p.name, vp.name, sel, err)
				}
				path := filepath.Join(dir, fmt.Sprintf("%s-%s-focus%d.png", p.name, vp.name, i+1))
				if err := os.WriteFile(path, png, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s at %s, %s focused: %s", p.name, vp.name, sel, path)
			}

			if vp.phone {
				type widths struct {
					Page, Window int
					SidebarRight float64
				}
				got := evaluate[widths](b, `({
					Page: document.documentElement.scrollWidth,
					Window: window.innerWidth,
					SidebarRight: document.querySelector(".sidebar").getBoundingClientRect().right,
				})`)
				if got.Page > got.Window || got.SidebarRight > float64(got.Window) {
					t.Errorf("%s at %s overflows: the page is %d px wide and the sidebar reaches %.0f px in a %d px window",
						p.name, vp.name, got.Page, got.SidebarRight, got.Window)
				}
			}
		}
	}
	b.expectNoProblems("the screenshots")
}
