package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// TestSmoke runs the whole tool, a second of load per target, against the
// test MySQL (catalog in ll_test_bench_3k, which the CI account may
// create) and memcached.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service and runs wrk")
	}
	dsn, memcached := testkit.Require(t, testkit.EnvMySQLDSN), testkit.Require(t, testkit.EnvMemcached)
	if _, err := exec.LookPath("wrk"); err != nil {
		testkit.Unavailable(t, "wrk is not installed: %v", err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = "ll_test_bench"
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"-mysql", cfg.FormatDSN(), "-memcached", memcached, "-targets", "ceiling,home-3k,got-it,home-fiber-session",
		"-rounds", "1", "-duration", "1s", "-warmup", "0", "-out", out}
	if err := run(ctx, args, env(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil || string(md) != stdout.String() {
		t.Errorf("results.md differs from the report printed (%v)", err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 4 || !strings.HasPrefix(rep.Machine.Fiber, "v2.") || rep.Machine.Wrk == "" || rep.Catalogs["3k"] == nil || rep.Catalogs["3k"].Name != "ll_test_bench_3k" {
		t.Fatalf("rows %+v, catalogs %+v", rep.Rows, rep.Catalogs)
	}
	for _, r := range rep.Rows {
		if r.RPS <= 0 {
			t.Errorf("%s: %v req/s", r.Target, r.RPS)
		}
		if visits := strings.HasPrefix(r.Target, "home-"); visits && (r.Lost == nil || *r.Lost > 0) {
			t.Errorf("%s: lost visits %v, want checked and none", r.Target, r.Lost)
		}
		if r.Target != "ceiling" && (r.CPUUS == nil || r.Allocs == nil || r.McCPUUS == nil) {
			t.Errorf("%s: a per-request figure is missing: %+v", r.Target, r)
		}
	}
	// Each run reads its services' /metrics before and after.
	if len(rep.Growth) != 2 || rep.Growth[0].Process != "service-3k" || rep.Growth[0].Readings < 4 || rep.Growth[0].FirstRSS <= 0 || rep.Growth[1].LastGoroutines <= 0 {
		t.Errorf("growth of the service processes: %+v", rep.Growth)
	}
	if len(rep.Tabs) != 2 || rep.Tabs[0].Stored != rep.Tabs[0].Expected || rep.Tabs[0].Expected != tabsBrowsers*(tabsAtOnce+1) {
		t.Errorf("concurrent tabs: %+v; the site's layer must count every visit", rep.Tabs)
	}
}
