package repository_test

import (
	"testing"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/repotest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t) // migrated once already
			before := count(t, db, "SELECT COUNT(*) FROM goose_db_version")
			for i := range 2 {
				if err := repository.Migrate(testContext(t), db.DB); err != nil {
					t.Fatalf("Migrate again (%d): %v", i+1, err)
				}
			}
			if after := count(t, db, "SELECT COUNT(*) FROM goose_db_version"); after != before {
				t.Errorf("goose_db_version has %d rows after rerunning, had %d", after, before)
			}
			if v := count(t, db, "SELECT MAX(version_id) FROM goose_db_version"); v < 1 {
				t.Errorf("schema version %d, want at least 1", v)
			}
			for _, tbl := range catalogTables {
				if n := count(t, db, "SELECT COUNT(*) FROM "+tbl.name); n != 0 {
					t.Errorf("%s has %d rows after migrating, want 0", tbl.name, n)
				}
			}
			// The status check keeps out statuses the site cannot label.
			if _, err := db.Exec(`INSERT INTO book (id, title, summary, isbn) VALUES (1, 'Emma', 'x', '9780141439587')`); err != nil {
				t.Fatalf("insert book: %v", err)
			}
			if _, err := db.Exec(`INSERT INTO book_instance (id, book_id, imprint, status)
				VALUES ('00000000-0000-4000-8000-000000000001', 1, 'Penguin, 2003', 'x')`); err == nil {
				t.Error("a copy with status 'x' was accepted")
			}
			if _, err := db.Exec(`INSERT INTO book_instance (id, book_id, imprint)
				VALUES ('00000000-0000-4000-8000-000000000002', 1, 'Penguin, 2003')`); err != nil {
				t.Fatalf("insert copy with the default status: %v", err)
			}
			if s := count(t, db, "SELECT COUNT(*) FROM book_instance WHERE status = 'm'"); s != 1 {
				t.Errorf("%d copies in maintenance, want the new copy's default status 'm'", s)
			}
			if _, err := db.Exec(`INSERT INTO book (id, title, summary, isbn) VALUES (2, 'Emma', 'y', '9780141439587')`); err == nil {
				t.Error("a second book with the same ISBN was accepted")
			}
		})
	}
}

// TestPingWantsTheNewestSchema: a replica is not ready on a database the
// newest migration has not reached (the migrate Job failed or has not run).
func TestPingWantsTheNewestSchema(t *testing.T) {
	db := repotest.MustMariaDB(t)
	catalog := repository.NewCatalog(db, repository.CatalogOptions{})
	if err := catalog.Ping(testContext(t)); err != nil {
		t.Fatalf("Ping on a migrated database: %v", err)
	}
	if _, err := db.Exec(`DELETE FROM goose_db_version WHERE version_id = (SELECT MAX(version_id) FROM (SELECT version_id FROM goose_db_version) v)`); err != nil {
		t.Fatal(err)
	}
	if err := catalog.Ping(testContext(t)); err == nil {
		t.Error("Ping on a database one migration behind: no error")
	}
}

// TestBookDetailMigrationRunsAgainAfterFailingHalfway: should creating
// the triggers fail (MySQL refuses them to a user without the privilege),
// the Job can be run again once it is fixed.
func TestBookDetailMigrationRunsAgainAfterFailingHalfway(t *testing.T) {
	db := repotest.MustMariaDB(t)
	for _, q := range []string{
		`DROP TRIGGER book_detail_on_copy_update`,
		`DELETE FROM goose_db_version WHERE version_id = 4`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := repository.Migrate(testContext(t), db.DB); err != nil {
		t.Fatalf("Migrate after a half-done migration 4: %v", err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = 'book_detail_on_copy_update'`); n != 1 {
		t.Errorf("the missing trigger was not created again (%d)", n)
	}
}
