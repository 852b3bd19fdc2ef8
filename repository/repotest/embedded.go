//go:build !noembeddeddb

package repotest

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/repository/embedded"
)

// MustEmbedded returns a migrated empty database on a go-mysql-server engine
// of its own, stopped when the test ends.
func MustEmbedded(t testing.TB) *sqlx.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	dsn, stop, err := embedded.Start(ctx)
	if err != nil {
		t.Fatalf("start embedded database: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop embedded database: %v", err)
		}
	})
	return openMigrated(t, ctx, dsn)
}
