package repository

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

// TestSchemaVersionIsTheNewestMigration keeps Ping's schema check in step
// with the migrations: a new one must raise schemaVersion.
func TestSchemaVersionIsTheNewestMigration(t *testing.T) {
	newest := int64(bookDetailVersion)
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		prefix, _, _ := strings.Cut(strings.TrimPrefix(f, "migrations/"), "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			t.Fatalf("%s: no version prefix: %v", f, err)
		}
		newest = max(newest, v)
	}
	if schemaVersion != newest {
		t.Errorf("schemaVersion is %d, the newest migration %d", schemaVersion, newest)
	}
}
