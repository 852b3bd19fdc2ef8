// Command bench measures LocalLibrary's pages on this machine with wrk,
// each beside a 13-byte Fiber handler (the ceiling) in the same rounds,
// and prints a Markdown table; see README.md.
//
//	go run ./internal/bench -mysql 'user:pass@tcp(127.0.0.1:3306)/llbench'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// dsnEnv is where the MySQL DSN is read when -mysql is not given.
const dsnEnv = "LOCALLIBRARY_BENCH_MYSQL_DSN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	targets          []string // rows of targetSpecs, in the order given
	rounds           int
	duration, warmup time.Duration
	rev              string // another git revision to measure beside the working tree
	mysqlDSN         string
	memcached        []string // given nodes; none: the bench starts its own
	conns            int
	out              string
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", strings.Join(targetNames(), ","), "targets to measure, in this order (see README.md)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each measures every target once, in turn, so the machine's drift hits all alike")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured wrk run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load on each target before the first round (0: none)")
	fs.StringVar(&o.rev, "rev", "", "also measure the service built from this git revision (e.g. HEAD~1), in the same rounds")
	fs.StringVar(&o.mysqlDSN, "mysql", getenv(dsnEnv), "DSN of a MySQL the bench may use (default $"+dsnEnv+"): it creates or reuses the databases NAME_3k and NAME_1m, NAME being the DSN's database (llbench if none)")
	memcached := fs.String("memcached", "", "memcached nodes host:port[,host:port...] to use; empty: the bench starts its own on free loopback ports")
	fs.IntVar(&o.conns, "conns", 64, "wrk connections (targets named -256 use 256)")
	fs.StringVar(&o.out, "out", "internal/bench/out", "folder for results.md, results.json and the logs (relative to the repository root)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	var err error
	if o.targets, err = parseTargets(*targets); err != nil {
		problems = append(problems, err)
	}
	if *memcached != "" {
		if o.memcached, err = memcachestore.ParseServers(*memcached); err != nil {
			problems = append(problems, fmt.Errorf("-memcached: %w", err))
		}
	}
	if o.mysqlDSN == "" {
		problems = append(problems, fmt.Errorf("-mysql (or $%s): the DSN of a MySQL the bench may create its catalogs in, such as 'user:pass@tcp(127.0.0.1:3306)/llbench'", dsnEnv))
	}
	if o.duration < time.Second {
		problems = append(problems, errors.New("-duration: at least 1s (wrk counts in seconds)"))
	}
	if o.rounds < 1 || o.conns < 1 || o.warmup < 0 {
		problems = append(problems, errors.New("-rounds and -conns: at least 1; -warmup: not negative"))
	}
	return o, errors.Join(problems...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	root, out, err := testkit.OutDir(o.out)
	if err != nil {
		return err
	}
	b := &bench{o: o, root: root, out: out, log: stderr}
	defer b.close()
	if err := b.setUp(ctx); err != nil {
		return err
	}
	if err := b.measure(ctx); err != nil {
		return err
	}
	rep := b.report()
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return rep.writeJSON(filepath.Join(out, "results.json"))
}
