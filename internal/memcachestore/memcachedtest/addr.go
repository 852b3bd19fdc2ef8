package memcachedtest

import (
	"os"
	"testing"
)

// Addr returns the shared memcached named by LOCALLIBRARY_TEST_MEMCACHED.
// When it is unset the test is skipped, or failed with
// LOCALLIBRARY_TEST_REQUIRE_SERVICES=1.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("LOCALLIBRARY_TEST_MEMCACHED")
	if addr == "" {
		if os.Getenv("LOCALLIBRARY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("LOCALLIBRARY_TEST_MEMCACHED is not set and LOCALLIBRARY_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("set LOCALLIBRARY_TEST_MEMCACHED=host:port to run against a real memcached")
	}
	return addr
}
