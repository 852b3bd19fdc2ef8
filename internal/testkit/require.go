package testkit

import (
	"fmt"
	"os"
	"testing"
)

// The environment variables that point tests at real services. A test
// reads them through Require or Optional, which decide whether a missing
// one skips the test or fails it.
const (
	// EnvMySQLDSN names a MySQL/MariaDB server whose user may create and
	// drop databases; its own database is only used to connect.
	EnvMySQLDSN = "LOCALLIBRARY_TEST_MYSQL_DSN"
	// EnvMemcached is the host:port of a memcached the tests share, each
	// under a key prefix of its own.
	EnvMemcached = "LOCALLIBRARY_TEST_MEMCACHED"
	// EnvRequireServices=1 (as CI sets it) turns every skip for a missing
	// service, binary or variable into a failure.
	EnvRequireServices = "LOCALLIBRARY_TEST_REQUIRE_SERVICES"
)

// examples show what a variable holds, in the message of a test skipped
// without it.
var examples = map[string]string{
	EnvMySQLDSN:  "root@tcp(127.0.0.1:3306)/test",
	EnvMemcached: "127.0.0.1:11211",
}

// Require returns the value of the environment variable name, which points
// the test at a service. Unset, it skips the test with a message naming
// the variable, or fails it under LOCALLIBRARY_TEST_REQUIRE_SERVICES=1.
func Require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Unavailable(t, "%s", notSet(name))
	}
	return v
}

// Optional returns the value of name, or "" for a test that then runs
// without the service. Under LOCALLIBRARY_TEST_REQUIRE_SERVICES=1 an unset
// name fails the test, as Require does: CI runs every test on every
// service.
func Optional(t testing.TB, name string) string {
	t.Helper()
	if servicesRequired() {
		return Require(t, name)
	}
	return os.Getenv(name)
}

// Unavailable skips the test because something it needs is missing (a
// service, a binary), or fails it under
// LOCALLIBRARY_TEST_REQUIRE_SERVICES=1. The message says what is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if servicesRequired() {
		t.Fatalf("%s (and %s=1)", msg, EnvRequireServices)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, EnvRequireServices)
}

// servicesRequired tells whether a missing service fails tests rather than
// skipping them.
func servicesRequired() bool { return os.Getenv(EnvRequireServices) == "1" }

func notSet(name string) string {
	if ex, ok := examples[name]; ok {
		return fmt.Sprintf("%s is not set (e.g. %s=%s)", name, name, ex)
	}
	return name + " is not set"
}
