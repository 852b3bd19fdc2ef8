package testkit

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a check ended: its Skipf and Fatalf end the
// goroutine, as testing.T's do.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls check on a fakeTB in a goroutine of its own, as the testing
// package runs a test, and returns the fake once check has ended.
func run(t *testing.T, check func(testing.TB) string) (*fakeTB, string) {
	f := &fakeTB{TB: t}
	var got string
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = check(f)
	}()
	<-done
	return f, got
}

func TestRequire(t *testing.T) {
	const name = "LOCALLIBRARY_TEST_SOMETHING"
	tests := []struct {
		name, value, require string
		wantSkip, wantFail   bool
	}{
		{"set", "host:1", "", false, false},
		{"set, services required", "host:1", "1", false, false},
		{"unset", "", "", true, false},
		{"unset, services required", "", "1", false, true},
		{"unset, required is not 1", "", "yes", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(name, tt.value)
			t.Setenv(EnvRequireServices, tt.require)
			f, got := run(t, func(tb testing.TB) string { return Require(tb, name) })
			if f.skipped != tt.wantSkip || f.failed != tt.wantFail {
				t.Fatalf("skipped %v, failed %v; want %v, %v (%q)", f.skipped, f.failed, tt.wantSkip, tt.wantFail, f.msg)
			}
			if !f.skipped && !f.failed && got != tt.value {
				t.Errorf("Require = %q, want %q", got, tt.value)
			}
			if (f.skipped || f.failed) && !strings.Contains(f.msg, name) {
				t.Errorf("message %q does not name %s", f.msg, name)
			}
			if f.skipped && !strings.Contains(f.msg, EnvRequireServices+"=1") {
				t.Errorf("skip message %q does not say how to make it a failure", f.msg)
			}
		})
	}
}

func TestRequireShowsAnExample(t *testing.T) {
	t.Setenv(EnvMemcached, "")
	t.Setenv(EnvRequireServices, "")
	f, _ := run(t, func(tb testing.TB) string { return Require(tb, EnvMemcached) })
	if !f.skipped || !strings.Contains(f.msg, EnvMemcached+"=127.0.0.1:11211") {
		t.Errorf("skipped %v with %q, want an example value", f.skipped, f.msg)
	}
}

func TestOptional(t *testing.T) {
	const name = "LOCALLIBRARY_TEST_SOMETHING"
	t.Setenv(name, "")
	t.Setenv(EnvRequireServices, "")
	f, got := run(t, func(tb testing.TB) string { return Optional(tb, name) })
	if f.skipped || f.failed || got != "" {
		t.Errorf("unset: skipped %v, failed %v, %q; want the test to run without it", f.skipped, f.failed, got)
	}
	t.Setenv(EnvRequireServices, "1")
	f, _ = run(t, func(tb testing.TB) string { return Optional(tb, name) })
	if !f.failed || !strings.Contains(f.msg, name) {
		t.Errorf("unset with services required: failed %v with %q, want a failure naming %s", f.failed, f.msg, name)
	}
	t.Setenv(name, "x")
	if f, got = run(t, func(tb testing.TB) string { return Optional(tb, name) }); f.failed || got != "x" {
		t.Errorf("set: failed %v, %q", f.failed, got)
	}
}

func TestUnavailable(t *testing.T) {
	for _, require := range []string{"", "1"} {
		t.Setenv(EnvRequireServices, require)
		f, _ := run(t, func(tb testing.TB) string { Unavailable(tb, "no %s on PATH", "nginx"); return "" })
		if f.failed != (require == "1") || f.skipped == (require == "1") || !strings.Contains(f.msg, "no nginx on PATH") {
			t.Errorf("%s=%q: skipped %v, failed %v, %q", EnvRequireServices, require, f.skipped, f.failed, f.msg)
		}
	}
}
