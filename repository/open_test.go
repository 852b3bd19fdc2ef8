package repository_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/internal/testkit"
	"github.com/locallibrary/locallibrary/repository"
)

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, dsn string
		maxOpen   int
		wantInErr string
	}{
		{"no pool", "root@tcp(127.0.0.1:3306)/test", 0, "maxOpenConns"},
		{"malformed DSN", "root@tcp(127.0.0.1:3306", 1, "parse DSN"},
		{"no database", "root@tcp(127.0.0.1:3306)/", 1, "names no database"},
		{"nothing listening", "root:secret@tcp(127.0.0.1:1)/test", 1, "127.0.0.1:1/test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			db, err := repository.Open(ctx, tt.dsn, tt.maxOpen, nil)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.dsn)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("Open(%q) error %q, want it to mention %q", tt.dsn, err, tt.wantInErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Open error %q shows the password", err)
			}
		})
	}
}

// TestDriverMessagesGoToThePoolsLogger: the MySQL driver's own messages
// about a pool's connections are in the log given to that pool, and in no
// other: two services in one process keep their own logs.
func TestDriverMessagesGoToThePoolsLogger(t *testing.T) {
	var logs [2]testkit.LogBuffer
	var pools [2]*sqlx.DB
	for i := range pools {
		db, err := repository.NewPool("u@tcp("+testkit.MustHangUpAddr(t)+")/db", 1, slog.New(slog.NewJSONHandler(&logs[i], nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		pools[i] = db
	}
	for i, db := range pools {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			t.Fatalf("pool %d: ping of a server that hangs up succeeded", i)
		}
		for j := range logs {
			got := strings.Count(logs[j].String(), `"msg":"mysql driver"`)
			if (j <= i) != (got > 0) {
				t.Errorf("after pinging pools 0..%d, log %d has %d driver messages:\n%s", i, j, got, logs[j].String())
			}
		}
	}
	if !strings.Contains(logs[0].String(), `"level":"WARN"`) {
		t.Errorf("driver messages are not warnings:\n%s", logs[0].String())
	}
}
