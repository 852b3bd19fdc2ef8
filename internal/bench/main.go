// Command bench measures LocalLibrary on this machine and prints a
// Markdown report: throughput and latency of the site's pages (home, lists,
// records) on a small and a large catalog, each against a trivial Fiber
// program (the machine's ceiling), plus what a page costs in memcached
// round trips, SQL queries and memory, and whether any visit is lost.
//
//	go run ./internal/bench   # from the repository root; see internal/bench/README.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	duration, warmup, checkDuration time.Duration
	rewarm                          time.Duration
	rounds                          int
	conns, highConns, wrkThreads    int
	browsers, undismissed           int
	targets                         []string
	reseed                          bool
	outDir, rev                     string
	mysqlDSN, smallDB, largeDB      string
	smallSize, largeSize            catalogSize
	listPages                       int
	env                             []string
	variants                        [][]string
	profile                         bool
	profileTarget                   string
	quiet                           float64
	quietWait                       time.Duration
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured load run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load on each target before the first round (0: none)")
	fs.DurationVar(&o.rewarm, "rewarm", 0, "unmeasured load on each target before each later round too, as a busy site keeps its caches warm (0: none)")
	fs.DurationVar(&o.checkDuration, "check-duration", 5*time.Second, "length of the lost-visit check's load on each home page (0: skip the check)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every target once, in turn, so drift hits all alike")
	fs.IntVar(&o.conns, "conns", 64, "connections of the load runs")
	fs.IntVar(&o.highConns, "high-conns", 256, "connections of the memory run (target "+home1mHigh+")")
	fs.IntVar(&o.wrkThreads, "wrk-threads", 2, "wrk threads")
	fs.IntVar(&o.browsers, "browsers", 1000, "returning browsers created per target")
	fs.IntVar(&o.undismissed, "undismissed", 200, "extra browsers that keep the demo notice, for the session-size figures")
	targets := fs.String("targets", defaultTargets(), "targets to run, in this order (see README)")
	fs.BoolVar(&o.reseed, "reseed", false, "drop and seed the catalogs again even if their counts match")
	fs.StringVar(&o.outDir, "out", "internal/bench/out", "folder for binaries, logs and results")
	fs.StringVar(&o.rev, "rev", "", "build the service from this git revision (e.g. HEAD) instead of the working tree")
	fs.StringVar(&o.mysqlDSN, "mysql", "root@tcp(127.0.0.1:3306)/", "administrator DSN of the MariaDB server")
	fs.StringVar(&o.smallDB, "small-db", "bench_small", "database of the small catalog")
	fs.StringVar(&o.largeDB, "large-db", "bench_large", "database of the large catalog")
	small := fs.String("small-size", "100/1000/3", "small catalog: authors/books/copies-per-book")
	large := fs.String("large-size", "10000/100000/10", "large catalog: authors/books/copies-per-book")
	fs.IntVar(&o.listPages, "list-pages", 0, "the book-list targets spread their requests over the first N pages (0: all pages)")
	var env, variants multiFlag
	fs.Var(&env, "env", "KEY=VALUE for every service process (repeatable), e.g. -env GOGC=200")
	fs.Var(&variants, "variant", "extra services on the large catalog with these settings, measured against "+home1m+" and "+home1mHigh+" (repeatable; KEY=VALUE[,KEY=VALUE])")
	fs.Float64Var(&o.quiet, "quiet", 0.25, "before each run, wait until other processes use less than this share of the machine (0: don't wait)")
	fs.DurationVar(&o.quietWait, "quiet-wait", 30*time.Second, "longest wait for -quiet before running anyway")
	fs.BoolVar(&o.profile, "profile", false, "after the rounds, record a target's service under its load with perf")
	fs.StringVar(&o.profileTarget, "profile-target", home1m, "the target -profile records (a home page)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.smallSize, err = parseSize(*small); err != nil {
		return o, err
	}
	if o.largeSize, err = parseSize(*large); err != nil {
		return o, err
	}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			if _, ok := specOf(t); !ok {
				return o, fmt.Errorf("-targets: unknown target %q (known: %s)", t, allTargets())
			}
			o.targets = append(o.targets, t)
		}
	}
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return o, fmt.Errorf("-env %q: want KEY=VALUE", e)
		}
	}
	o.env = env
	for _, v := range variants {
		kvs := strings.Split(v, ",")
		for _, kv := range kvs {
			if !strings.Contains(kv, "=") {
				return o, fmt.Errorf("-variant %q: want KEY=VALUE[,KEY=VALUE]", v)
			}
		}
		o.variants = append(o.variants, kvs)
	}
	switch {
	case o.duration < time.Second:
		return o, errors.New("-duration: at least 1s")
	case o.rounds < 1:
		return o, errors.New("-rounds: at least 1")
	case o.conns < 1 || o.highConns < 1:
		return o, errors.New("-conns and -high-conns: at least 1")
	case o.browsers < max(o.conns, o.highConns):
		return o, fmt.Errorf("-browsers: at least as many as connections (%d)", max(o.conns, o.highConns))
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	root, out, err := testkit.OutDir(o.outDir)
	if err != nil {
		return err
	}
	o.outDir = out
	h := &harness{o: o, root: root, log: stderr}
	defer h.cleanup()
	if err := h.setUp(ctx); err != nil {
		return err
	}
	if err := h.measureAll(ctx); err != nil {
		return err
	}
	report := h.report()
	fmt.Fprint(stdout, report)
	if err := os.WriteFile(filepath.Join(o.outDir, "results.md"), []byte(report), 0o644); err != nil {
		return err
	}
	return h.writeJSON(filepath.Join(o.outDir, "results.json"))
}

// build compiles the service (production build) and the ceiling program.
func (h *harness) build(ctx context.Context) error {
	binDir := filepath.Join(h.o.outDir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	src := h.root
	if h.o.rev != "" {
		src = filepath.Join(h.o.outDir, "src")
		if err := os.RemoveAll(src); err != nil {
			return err
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", h.root, h.o.rev, src)
		if out, err := archive.CombinedOutput(); err != nil {
			return fmt.Errorf("git archive %s: %w\n%s", h.o.rev, err, out)
		}
	}
	h.serviceBin = filepath.Join(binDir, "locallibrary")
	h.ceilingBin = filepath.Join(binDir, "ceiling")
	if err := testkit.BuildService(ctx, src, h.serviceBin); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", h.ceilingBin, "./internal/bench/ceiling")
	cmd.Dir = h.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./internal/bench/ceiling: %w\n%s", err, out)
	}
	return nil
}
