//go:build !noembeddeddb

package app_test

import (
	"net/url"
	"testing"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// TestBrowserTakesTheHostCookies: with Secure cookies a real browser keeps
// the __Host- names (it refuses one whose attributes break the prefix's
// rules: no Secure, a Path other than /, a Domain), counts its visits,
// keeps its page size and forgets. Chromium takes Secure cookies over
// plain HTTP from localhost only, so the site is opened by that name.
func TestBrowserTakesTheHostCookies(t *testing.T) {
	b := newBrowser(t, browserOptions{})
	site := startSiteWith(t, testkit.Optional(t, testkit.EnvMemcached), uniqueKeyPrefix(t), map[string]string{"LOCALLIBRARY_COOKIE_SECURE": "true"})
	u, err := url.Parse(site)
	if err != nil {
		t.Fatal(err)
	}
	site = "http://localhost:" + u.Port()

	b.open(site + "/catalog/")
	b.expectVisits(1)
	b.reload()
	b.expectVisits(2)
	b.open(site + "/catalog/books/?per_page=25")
	cookies := b.cookies(site + "/catalog/")
	if cookies["__Host-sessionid"] == "" || cookies["__Host-per_page"] != "25" || cookies["__Host-cookietest"] == "" {
		t.Fatalf("the browser keeps %v, want __Host-sessionid, __Host-per_page=25 and __Host-cookietest", cookies)
	}
	for _, plain := range []string{"sessionid", "per_page", "cookietest"} {
		if _, ok := cookies[plain]; ok {
			t.Errorf("a plain %s cookie beside the __Host- ones: %v", plain, cookies)
		}
	}
	before := cookies["__Host-sessionid"]
	b.open(site + "/catalog/forget/")
	b.click("form button[type=submit]")
	b.expectVisits(1)
	if after := b.cookies(site + "/catalog/")["__Host-sessionid"]; after == "" || after == before {
		t.Errorf("__Host-sessionid was %q and is %q after Forget me: want a new one", before, after)
	}
}
