// Command soak runs LocalLibrary under steady load for minutes, as many
// returning browsers, and checks that nothing fails, no visit is lost or
// counted twice, and neither memory nor goroutines grow. Run it from the
// repository root:
//
//	go run ./internal/bench/soak
//
// It builds the service, starts its own memcached and service on free
// loopback ports, and ends both when it stops, however it stops. It exits 1
// when a target is missed and 2 when it could not run.
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

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// errTargetsMissed is returned when the run finished but a target was missed.
var errTargetsMissed = errors.New("targets missed")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, errTargetsMissed):
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
}

type options struct {
	duration         time.Duration
	warmup           time.Duration
	conns            int
	browsers         int
	setupConns       int
	timeout          time.Duration
	sampleEvery      time.Duration
	dsn              string
	bin              string
	out              string
	memcachedTimeout string
	serviceEnv       string
	keep             bool
	memcachedNodes   int
	memcachedMB      int
	faults           bool
	flood            time.Duration
	floodConns       int
	office           int
}

func parseOptions(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.DurationVar(&o.duration, "duration", 5*time.Minute, "how long the load runs")
	fs.DurationVar(&o.warmup, "warmup", 0, "baseline for RSS and goroutines taken this long into the load (0: 20% of -duration, at most 1m)")
	fs.IntVar(&o.conns, "conns", 256, "connections, each with one request in flight")
	fs.IntVar(&o.browsers, "browsers", 10000, "distinct browsers (sessions)")
	fs.IntVar(&o.setupConns, "setup-conns", 64, "connections used to create the browsers and to read their final counts")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "a request not answered within this is an error (timeout)")
	fs.DurationVar(&o.sampleEvery, "sample-every", 10*time.Second, "how often /metrics is read and a progress line printed")
	fs.StringVar(&o.dsn, "dsn", "root@tcp(127.0.0.1:3306)/soak_library", "MySQL DSN of the catalog; the database is created, migrated and seeded (100 authors, 1,000 books, 3 copies each) when it has no books")
	fs.StringVar(&o.bin, "bin", "", "use this locallibrary binary instead of building one")
	fs.StringVar(&o.out, "out", "internal/bench/soak/out", "folder for the binary, logs and result.md")
	fs.StringVar(&o.memcachedTimeout, "memcached-timeout", "", "LOCALLIBRARY_MEMCACHED_TIMEOUT for the service (empty: the service's default, 100ms)")
	fs.StringVar(&o.serviceEnv, "service-env", "", "more settings for the service, KEY=VALUE[,KEY=VALUE…] (e.g. LOCALLIBRARY_DB_MAX_OPEN_CONNS=32)")
	fs.IntVar(&o.memcachedNodes, "memcached-nodes", 1, "memcached processes, all listed in LOCALLIBRARY_MEMCACHED_SERVERS")
	fs.IntVar(&o.memcachedMB, "memcached-mb", 256, "memcached's item memory (-m), per node")
	fs.DurationVar(&o.flood, "flood", 0, "before the load, while the browsers are away, flood the service with first visits from one address for this long (0: no flood)")
	fs.IntVar(&o.floodConns, "flood-conns", 128, "connections of the -flood")
	fs.IntVar(&o.office, "office", 50, "with -flood: browsers behind one other address that arrive halfway through the flood and must get sessions and counts")
	fs.BoolVar(&o.faults, "faults", false, "a third into the load kill memcached node 1 and start it again, empty, on its port; two thirds in, with 3 or more nodes, kill the last one for good (use LOCALLIBRARY_SESSION_REPLICAS=2 in -service-env to lose no session)")
	fs.BoolVar(&o.keep, "keep-running-services", false, "leave memcached and the service running at the end (their pids are printed)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problems []error
	if o.duration < 10*time.Second {
		problems = append(problems, errors.New("-duration must be at least 10s"))
	}
	if o.conns < 1 || o.browsers < o.conns || o.setupConns < 1 {
		problems = append(problems, errors.New("-conns and -setup-conns must be at least 1, -browsers at least -conns (a browser has one request in flight at a time)"))
	}
	if o.flood < 0 || o.floodConns < 1 || o.office < 0 {
		problems = append(problems, errors.New("-flood must not be negative, -flood-conns at least 1, -office not negative"))
	}
	if o.memcachedNodes < 1 {
		problems = append(problems, errors.New("-memcached-nodes must be at least 1"))
	}
	if o.warmup == 0 {
		o.warmup = min(time.Minute, o.duration/5)
	}
	if o.warmup >= o.duration {
		problems = append(problems, errors.New("-warmup must be shorter than -duration"))
	}
	return o, errors.Join(problems...)
}

func (o options) serviceSettings() ([]string, error) {
	var env []string
	if o.memcachedTimeout != "" {
		env = append(env, "LOCALLIBRARY_MEMCACHED_TIMEOUT="+o.memcachedTimeout)
	}
	if o.serviceEnv != "" {
		for _, kv := range strings.Split(o.serviceEnv, ",") {
			if k, _, ok := strings.Cut(kv, "="); !ok || !strings.HasPrefix(k, "LOCALLIBRARY_") {
				return nil, fmt.Errorf("-service-env: %q is not LOCALLIBRARY_KEY=VALUE", kv)
			}
			env = append(env, kv)
		}
	}
	return env, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	opt, err := parseOptions(args, stdout)
	if err != nil {
		return err
	}
	extraEnv, err := opt.serviceSettings()
	if err != nil {
		return err
	}
	root, out, err := testkit.OutDir(opt.out)
	if err != nil {
		return err
	}
	say := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	bin := opt.bin
	if bin == "" {
		bin = filepath.Join(out, "locallibrary")
		say("building the service (go build -tags noembeddeddb) …")
		if err := testkit.BuildService(ctx, root, bin); err != nil {
			return err
		}
	}

	procs, err := testkit.NewProcs(out)
	if err != nil {
		return err
	}
	procs.Keep = opt.keep
	addrs := map[*testkit.Proc]string{}
	defer func() {
		if opt.keep {
			describe(stdout, procs, addrs)
			return
		}
		if stopErr := procs.StopAll(15 * time.Second); stopErr != nil && err == nil {
			err = stopErr
		}
	}()

	say("preparing the catalog %s …", config.MaskDSN(opt.dsn))
	catalog, err := prepareCatalog(ctx, procs, bin, opt.dsn)
	if err != nil {
		return err
	}
	say("catalog: %d books, %d authors", len(catalog.books), catalog.authors)

	nodes := make([]*process, opt.memcachedNodes)
	var servers []string
	for i := range nodes {
		if nodes[i], err = startMemcached(ctx, procs, i, "", opt.memcachedMB); err != nil {
			return err
		}
		addrs[nodes[i].Proc] = nodes[i].addr
		say("memcached node %d on %s (pid %d)", i+1, nodes[i].addr, nodes[i].PID())
		servers = append(servers, nodes[i].addr)
	}
	// The node that no fault touches is the one whose CPU and stats are read.
	mc := nodes[min(1, len(nodes)-1)]
	svc, err := startService(ctx, procs, bin, opt.dsn, strings.Join(servers, ","), extraEnv)
	if err != nil {
		return err
	}
	addrs[svc.Proc] = svc.addr
	say("service on %s (pid %d), log %s", svc.addr, svc.PID(), svc.Log)

	var faults func(ctx context.Context, t *tally, res *result)
	if opt.faults {
		faults = func(ctx context.Context, t *tally, res *result) {
			injectFaults(ctx, opt, procs, nodes, t, res, say)
		}
	}
	res, err := soak(ctx, opt, catalog, svc, mc, faults, say, stdout)
	if err != nil {
		return err
	}
	table := res.markdown()
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table)
	resultPath := filepath.Join(out, "result.md")
	if err := os.WriteFile(resultPath, []byte(table), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n(also written to %s)\n", resultPath)
	if missed := res.missed(); len(missed) > 0 {
		return fmt.Errorf("%w: %s", errTargetsMissed, strings.Join(missed, "; "))
	}
	return nil
}
