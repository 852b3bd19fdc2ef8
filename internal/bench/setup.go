package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/locallibrary/locallibrary/internal/bench/catalogs"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// fleetReplicas and fleetNodes are the fleet target's replicas and
// memcached nodes.
const (
	fleetReplicas = 6
	fleetNodes    = 3
)

// keyPrefix keeps the bench's sessions apart from a site's own on a
// memcached it is given.
const keyPrefix = "llbench:"

type bench struct {
	o         options
	root, out string
	log       io.Writer
	tmp       string            // binaries, nginx's files; removed at the end
	bins      map[string]string // wrk, nginx, memcached: where they were found
	procs     *testkit.Procs

	catalogs      map[string]*catalogs.DB // by catalogs.Sizes key
	nodes         []*mcNode               // the services' memcached
	fleetNodes    []*mcNode               // the fleet's
	builds        []*build                // the working tree, then -rev
	ceiling       *testkit.Proc
	ceilAddr      string
	ceilFleet     []*testkit.Proc // ceiling-fleet's ceilings, behind nginx at ceilFleetAddr
	ceilFleetAddr string
	fiber         *fiberProc
	targets       []*target
	machine       machine

	runs   []result
	tabs   []tabsResult
	growth growth
	notes  []string
}

// build is the service at one revision, with the processes it runs.
type build struct {
	label  string // "" for the working tree, "@REV" for -rev
	bin    string
	svcs   map[string]*testkit.Service // by targetSpec.serviceKey
	fleet  []*testkit.Service
	lbAddr string // nginx in front of the fleet
	// Browsers, made through this build's services: one group on the
	// services' memcached (any of them reads its sessions), one on the
	// fleet's.
	single, fleetGroup *group
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// note adds a remark to the report (and the log), once.
func (b *bench) note(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if !slices.Contains(b.notes, text) {
		b.logf("%s", text)
		b.notes = append(b.notes, text)
	}
}

func (b *bench) wants(k kind) bool {
	for _, name := range b.o.targets {
		if s, _ := specOf(name); s.kind == k {
			return true
		}
	}
	return false
}

func (b *bench) close() {
	if b.procs != nil {
		if err := b.procs.StopAll(5 * time.Second); err != nil {
			b.logf("%v", err)
		}
	}
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
}

// setUp builds, prepares the catalogs and memcached, starts every process
// and makes the browsers and the targets.
func (b *bench) setUp(ctx context.Context) error {
	var err error
	if b.tmp, err = os.MkdirTemp("", "llbench-"); err != nil {
		return err
	}
	if b.procs, err = testkit.NewProcs(filepath.Join(b.out, "logs")); err != nil {
		return err
	}
	b.procs.RecordPIDs(filepath.Join(b.out, "children.pids")) // ends a killed run's leftovers
	if err := os.MkdirAll(filepath.Join(b.out, "wrk"), 0o755); err != nil {
		return err
	}
	needs := []string{"wrk"}
	if b.wants(fleetKind) || b.wants(ceilingFleetKind) {
		needs = append(needs, "nginx")
	}
	if len(b.o.memcached) == 0 {
		needs = append(needs, "memcached")
	}
	b.bins = map[string]string{}
	for _, n := range needs {
		if b.bins[n], err = testkit.FindBin(n, n, "/usr/sbin", "/usr/bin", "/usr/local/bin"); err != nil {
			return err
		}
	}
	if err := b.startMemcached(ctx); err != nil { // first: it may refuse at once
		return err
	}
	if err := b.buildAll(ctx); err != nil {
		return err
	}
	if err := b.prepareCatalogs(ctx); err != nil {
		return err
	}
	b.machine = readMachine(ctx, b)
	return b.startAll(ctx)
}

// buildAll compiles the service as deployed (go build -tags
// noembeddeddb), at -rev too in a temporary git worktree, and the ceiling
// and fibersession programs from the working tree.
func (b *bench) buildAll(ctx context.Context) error {
	b.logf("building the service, the ceiling and fibersession")
	cur := &build{bin: filepath.Join(b.tmp, "locallibrary")}
	if err := testkit.BuildService(ctx, b.root, cur.bin); err != nil {
		return err
	}
	b.builds = append(b.builds, cur)
	for _, prog := range []string{"ceiling", "fibersession"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(b.tmp, prog), "./internal/bench/"+prog)
		cmd.Dir = b.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./internal/bench/%s: %w\n%s", prog, err, out)
		}
	}
	if b.o.rev == "" {
		return nil
	}
	short, err := exec.CommandContext(ctx, "git", "-C", b.root, "rev-parse", "--short", b.o.rev).Output()
	if err != nil {
		return fmt.Errorf("-rev %s: not a revision of this repository: %w", b.o.rev, err)
	}
	rev := &build{label: "@" + strings.TrimSpace(string(short)), bin: filepath.Join(b.tmp, "locallibrary-rev")}
	b.logf("building the service at %s in a temporary git worktree", b.o.rev)
	src := filepath.Join(b.tmp, "rev-src")
	if out, err := exec.CommandContext(ctx, "git", "-C", b.root, "worktree", "add", "--detach", src, b.o.rev).CombinedOutput(); err != nil {
		return fmt.Errorf("git worktree add %s: %w\n%s", b.o.rev, err, out)
	}
	defer func() { _ = exec.Command("git", "-C", b.root, "worktree", "remove", "--force", src).Run() }()
	if err := testkit.BuildService(ctx, src, rev.bin); err != nil {
		return err
	}
	b.builds = append(b.builds, rev)
	return nil
}

// prepareCatalogs makes the catalogs the targets need (see package
// catalogs).
func (b *bench) prepareCatalogs(ctx context.Context) error {
	var need []string
	for _, name := range b.o.targets {
		if s, _ := specOf(name); s.catalog != "" && !slices.Contains(need, s.catalog) {
			need = append(need, s.catalog)
		}
	}
	var err error
	b.catalogs, err = catalogs.Prepare(ctx, b.o.mysqlDSN, need, b.procs, b.builds[0].bin, b.logf)
	return err
}

// startMemcached uses the given nodes, or starts one for the services and,
// for the fleet, two more.
func (b *bench) startMemcached(ctx context.Context) error {
	if len(b.o.memcached) > 0 {
		for _, addr := range b.o.memcached {
			n, err := openNode(addr)
			if err != nil {
				return err
			}
			b.nodes = append(b.nodes, n)
		}
		b.fleetNodes = b.nodes
		b.logf("memcached: using %s; the sessions the bench makes are under the key prefix %q and expire within an hour",
			strings.Join(b.o.memcached, ","), keyPrefix)
		if b.wants(fleetKind) && len(b.nodes) != fleetNodes {
			b.note("the fleet ran on the %d memcached nodes given, not %d", len(b.nodes), fleetNodes)
		}
		return nil
	}
	want := 1
	if b.wants(fleetKind) {
		want = fleetNodes
	}
	for i := range want {
		// -t 1: one worker thread is plenty beside a load on two cores;
		// -c: every service's and replica's pool may fill its cap.
		m, err := testkit.StartMemcached(ctx, b.procs, fmt.Sprintf("memcached-%d", i+1), "", 256, "-c", "8192", "-t", "1")
		if err != nil {
			return err
		}
		n, err := openNode(m.Addr)
		if err != nil {
			return err
		}
		b.fleetNodes = append(b.fleetNodes, n)
	}
	b.nodes = b.fleetNodes[:1]
	b.logf("memcached: started %d node(s) on free loopback ports (%s), ended at exit", want, addrsOf(b.fleetNodes))
	return nil
}

// serviceEnv is a service's settings.
func (b *bench) serviceEnv(db *catalogs.DB, nodes []*mcNode, extra ...string) []string {
	return append([]string{
		"LOCALLIBRARY_MYSQL_DSN=" + db.DSN,
		"LOCALLIBRARY_MEMCACHED_SERVERS=" + addrsOf(nodes),
		"LOCALLIBRARY_MEMCACHED_KEY_PREFIX=" + keyPrefix,
		"LOCALLIBRARY_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789",
		"LOCALLIBRARY_SHUTDOWN_DRAIN=0s",
		"LOCALLIBRARY_LOG_LEVEL=warn",
		// All the bench's browsers come from 127.0.0.1, far more new
		// sessions from one address than the limit allows.
		"LOCALLIBRARY_NEW_SESSIONS_PER_MINUTE=600000000",
		"LOCALLIBRARY_NEW_SESSIONS_BURST=1000000",
	}, extra...)
}

// startService starts a service and waits for its counts, which its
// first page would otherwise wait for.
func (b *bench) startService(ctx context.Context, name, bin string, env []string) (*testkit.Service, error) {
	s, err := testkit.StartService(ctx, b.procs, name, bin, env)
	if err != nil {
		return nil, err
	}
	url := "http://" + s.Addr + "/catalog/books/"
	err = testkit.WaitFor(ctx, s.Proc, time.Minute, name+" serves "+url, func() error { return testkit.GetOK(ctx, url) })
	return s, err
}

// startCeiling starts a ceiling process on a free port and returns it and
// its address once it answers.
func (b *bench) startCeiling(ctx context.Context, name string) (*testkit.Proc, string, error) {
	addr, err := testkit.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := b.procs.Start(name, nil, filepath.Join(b.tmp, "ceiling"), "-addr", addr)
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr + "/"
	return p, addr, testkit.WaitFor(ctx, p, 10*time.Second, name+" answers", func() error { return testkit.GetOK(ctx, url) })
}

// startAll starts the processes the targets need, makes the browsers and
// the targets.
func (b *bench) startAll(ctx context.Context) error {
	if b.wants(ceilingKind) {
		var err error
		if b.ceiling, b.ceilAddr, err = b.startCeiling(ctx, "ceiling"); err != nil {
			return err
		}
	}
	if b.wants(ceilingFleetKind) {
		if err := b.startCeilingFleet(ctx); err != nil {
			return err
		}
	}
	for _, bd := range b.builds {
		bd.svcs = map[string]*testkit.Service{}
		for _, name := range b.o.targets {
			s, _ := specOf(name)
			if !s.onService() || s.kind == fleetKind || bd.svcs[s.serviceKey()] != nil {
				continue
			}
			var extra []string
			if s.cold {
				extra = append(extra, "LOCALLIBRARY_PAGE_CACHE_MIB=0")
			}
			svc, err := b.startService(ctx, "service-"+s.serviceKey()+bd.label, bd.bin, b.serviceEnv(b.catalogs[s.catalog], b.nodes, extra...))
			if err != nil {
				return err
			}
			bd.svcs[s.serviceKey()] = svc
		}
		if b.wants(fleetKind) {
			if err := b.startFleet(ctx, bd); err != nil {
				return err
			}
		}
	}
	if b.wants(fiberKind) {
		var err error
		if b.fiber, err = b.startFiber(ctx); err != nil {
			return err
		}
	}
	var names []string
	for _, p := range b.procs.Running() {
		names = append(names, p.Name)
	}
	b.logf("running on loopback, until the bench ends: %s (logs in %s)", strings.Join(names, ", "), b.procs.LogDir)
	if err := b.makeBrowsers(ctx); err != nil {
		return err
	}
	return b.makeTargets(ctx)
}

// anyService is a service of bd on the services' memcached, through which
// browsers are made (sessions live in memcached: any service reads them).
func (bd *build) anyService() *testkit.Service {
	for _, key := range []string{"3k", "1m", "1m-cold"} {
		if s := bd.svcs[key]; s != nil {
			return s
		}
	}
	return nil
}

// fiberProc is the fibersession program: the home page on Fiber's own
// session middleware.
type fiberProc struct {
	*testkit.Service
	group *group
}

func (f *fiberProc) base() string { return "http://" + f.Addr }

// startFiber starts fibersession on the 3k catalog and the services'
// memcached, its sessions under a key prefix of their own. It reads the
// service's settings, so it starts as a service does.
func (b *bench) startFiber(ctx context.Context) (*fiberProc, error) {
	env := b.serviceEnv(b.catalogs["3k"], b.nodes, "LOCALLIBRARY_MEMCACHED_KEY_PREFIX="+keyPrefix+"fs:")
	s, err := testkit.StartService(ctx, b.procs, "fibersession", filepath.Join(b.tmp, "fibersession"), env)
	if err != nil {
		return nil, err
	}
	return &fiberProc{Service: s}, nil
}
