//go:build noembeddeddb

package repotest

import (
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// MustEmbedded skips the test: this build has no embedded engine.
func MustEmbedded(t testing.TB) *sqlx.DB {
	t.Helper()
	testkit.Unavailable(t, "embedded database tests skipped: built with -tags noembeddeddb")
	return nil
}
