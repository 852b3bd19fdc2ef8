package catalogs

import (
	"context"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// An account that may not create NAME_3k and NAME_1m is told which right
// it lacks, before anything is run or changed. (Making and reusing a
// catalog is run by the bench's smoke test.)
func TestWithoutTheRightToCreate(t *testing.T) {
	dsn := testkit.Require(t, testkit.EnvMySQLDSN)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User == "root" {
		t.Skip("the test account may create any database")
	}
	cfg.DBName = "not_granted_to_the_test_account"
	logf := func(string, ...any) {}
	_, err = Prepare(context.Background(), cfg.FormatDSN(), []string{"1m", "3k"}, nil, "", logf)
	if err == nil || !strings.Contains(err.Error(), "the right to create not_granted_to_the_test_account_3k and not_granted_to_the_test_account_1m") {
		t.Errorf("error %v, want the right it lacks named", err)
	}
	if _, err := Prepare(context.Background(), "u@tcp(192.0.2.1:3306)/x", []string{"3k"}, nil, "", logf); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a server on another machine: %v, want refused", err)
	}
}
