//go:build !noembeddeddb

package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestCachedPagesSurviveMySQLOutage cuts MySQL off under a service whose
// page cache holds some pages: those are served, marked as possibly out of
// date, and the others answer 503; when MySQL returns, the marks go.
func TestCachedPagesSurviveMySQLOutage(t *testing.T) {
	cfg, err := mysql.ParseDSN(seededEmbeddedDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, cfg.Addr)
	cfg.Addr = proxy.addr()
	s := startService(t, map[string]string{
		"LOCALLIBRARY_MYSQL_DSN":      cfg.FormatDSN(),
		"LOCALLIBRARY_QUERY_TIMEOUT":  "500ms",
		"LOCALLIBRARY_COUNTS_TTL":     "50ms",
		"LOCALLIBRARY_PAGE_CACHE_TTL": "100ms",
	})
	held := []string{"/catalog/books/?page=2", "/catalog/book/3", "/catalog/author/2", "/catalog/authors/"}
	fresh := map[string]string{}
	for _, path := range held {
		status, body := fetch(s.url + path)
		if status != 200 || strings.Contains(body, "may be out of date") {
			t.Fatalf("%s before the outage: %d", path, status)
		}
		fresh[path] = body
	}

	proxy.setDown(true)
	for _, path := range held {
		waitFor(t, path+" marked out of date", 5*time.Second, func() bool {
			status, body := fetch(s.url + path)
			if status != 200 {
				t.Fatalf("%s during the outage: %d, want the held page", path, status)
			}
			return strings.Contains(body, "This page may be out of date") &&
				strings.Replace(body, `<p class="notice">This page may be out of date: the catalog is not answering right now.</p>`, "", 1) == fresh[path]
		})
	}
	for _, path := range []string{"/catalog/book/4", "/catalog/author/3", "/catalog/books/?page=3"} {
		if status, body := fetch(s.url + path); status != 503 || !strings.Contains(body, "The catalog is unavailable") {
			t.Errorf("%s, not held, during the outage: %d, want 503", path, status)
		}
	}

	proxy.setDown(false)
	for _, path := range held {
		waitFor(t, path+" fresh again", 15*time.Second, func() bool {
			status, body := fetch(s.url + path)
			return status == 200 && !strings.Contains(body, "may be out of date")
		})
	}
}
