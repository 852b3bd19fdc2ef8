package repository_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
			db, err := repository.Open(ctx, tt.dsn, tt.maxOpen)
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
