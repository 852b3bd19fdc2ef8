package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// interruptGuard runs what must not be left behind when the test binary
// is interrupted (SIGINT, SIGTERM), which skips t.Cleanup: most recently
// added first, then the signal takes its usual course.
type interruptGuard struct {
	mu    sync.Mutex
	hooks []func()
}

func watchInterrupt(t *testing.T) *interruptGuard {
	g := &interruptGuard{}
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() {
		select {
		case sig := <-interrupted:
			g.mu.Lock()
			for i := len(g.hooks) - 1; i >= 0; i-- {
				g.hooks[i]()
			}
			signal.Reset(sig.(syscall.Signal))
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		case <-stop:
		}
	}()
	t.Cleanup(func() {
		signal.Stop(interrupted)
		close(stop)
	})
	return g
}

func (g *interruptGuard) add(hook func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hooks = append(g.hooks, hook)
}

// procs starts the proof's child processes and ends exactly those, by id:
// at the end of the test (t.Cleanup, also when it fails), and when the test
// binary is interrupted. Each child leads a process group of its own, so
// nginx's workers go with their master; each also gets SIGKILL from the
// kernel if the test binary dies outright.
type procs struct {
	t      *testing.T
	logDir string

	mu   sync.Mutex
	list []*proc
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string        // its stdout and stderr
	done chan struct{} // closed when it has exited
	err  error         // what Wait returned; read after done
}

func newProcs(t *testing.T, dir string, guard *interruptGuard) *procs {
	t.Helper()
	p := &procs{t: t, logDir: filepath.Join(dir, "logs")}
	if err := os.MkdirAll(p.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	guard.add(p.killAll)
	t.Cleanup(func() { p.stopAll(5 * time.Second) })
	return p
}

// start runs bin with env added to a copy of this process's environment
// from which every LOCALLIBRARY_ variable is removed (a developer's own
// settings must not leak into the proof).
func (p *procs) start(name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(p.logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	p.mu.Lock()
	p.list = append(p.list, pr)
	p.mu.Unlock()
	return pr, nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOCALLIBRARY_") {
			env = append(env, kv)
		}
	}
	return env
}

func (pr *proc) pid() int { return pr.cmd.Process.Pid }

func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

func (pr *proc) signal(sig syscall.Signal) error { return syscall.Kill(pr.pid(), sig) }

// wait waits up to d for the process to exit and returns Wait's result.
func (pr *proc) wait(d time.Duration) error {
	select {
	case <-pr.done:
		return pr.err
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %v", pr.name, pr.pid(), d)
	}
}

// stopAll sends SIGTERM to every child still running, all at once, waits
// up to grace for them, then kills what is left with its process group.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	list := append([]*proc(nil), p.list...)
	p.mu.Unlock()
	for _, pr := range list {
		if !pr.exited() {
			_ = pr.signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for _, pr := range list {
		select {
		case <-pr.done:
		case <-deadline:
		}
	}
	p.killAll()
	for _, pr := range list {
		<-pr.done
	}
	if p.t.Failed() {
		for _, pr := range list {
			p.t.Logf("--- last lines of %s (%s):\n%s", pr.name, pr.log, tail(pr.log, 15))
		}
	}
}

// killAll sends SIGKILL to the process group of every child still running
// (and to the groups of those that exited, where nginx workers could be
// left: the groups are ours alone, led by pids we started).
func (p *procs) killAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.list {
		// A group outlives its leader while members remain, and its id is
		// not reused meanwhile: ESRCH when it is empty, nothing worse.
		_ = syscall.Kill(-pr.pid(), syscall.SIGKILL)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls check every 25ms until it returns nil, the process exits,
// or d passes.
func waitFor(pr *proc, d time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if pr != nil && pr.exited() {
			return fmt.Errorf("%s: %s exited (%v) before that; log:\n%s", what, pr.name, pr.err, tail(pr.log, 15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, d, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// tools are the programs the proof runs, besides the service it builds.
type tools struct{ nginx, memcached, mariadb string }

// findTools looks the tools up on PATH and in the Debian packages' places
// (/usr/sbin is not on every user's PATH).
func findTools(t *testing.T) tools {
	t.Helper()
	var missing []string
	find := func(name string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		missing = append(missing, name)
		return ""
	}
	tl := tools{
		nginx:     find("nginx", "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"),
		memcached: find("memcached", "/usr/bin", "/usr/local/bin"),
		mariadb:   find("mariadb", "/usr/bin", "/usr/local/bin"),
	}
	if len(missing) > 0 {
		unavailable(t, fmt.Sprintf("not installed: %s (Debian: apt-get install nginx memcached mariadb-client)", strings.Join(missing, ", ")))
	}
	return tl
}

// unavailable skips the test, or fails it under
// LOCALLIBRARY_TEST_REQUIRE_SERVICES=1 (as CI sets it).
func unavailable(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("%s (and %s=1)", msg, envRequire)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, envRequire)
}

// mysqlDSN is a go-sql-driver DSN taken apart, for the mariadb client
// (the deploy module does not have the driver, and needs no more).
type mysqlDSN struct {
	user, pass  string
	proto, addr string // "tcp" and host:port, or "unix" and a socket path
	db, params  string
}

// parseDSN parses [user[:pass]@][proto[(addr)]]/db[?params] as the driver
// does: the database after the last slash, the credentials before the last
// @ ahead of it.
func parseDSN(s string) (mysqlDSN, error) {
	slash := strings.LastIndex(s, "/")
	if slash < 0 {
		return mysqlDSN{}, errors.New("no /dbname")
	}
	d := mysqlDSN{proto: "tcp", addr: "127.0.0.1:3306"}
	head := s[:slash]
	d.db, d.params, _ = strings.Cut(s[slash+1:], "?")
	if at := strings.LastIndex(head, "@"); at >= 0 {
		d.user, d.pass, _ = strings.Cut(head[:at], ":")
		head = head[at+1:]
	}
	if head != "" {
		open := strings.Index(head, "(")
		switch {
		case open < 0:
			d.proto = head
		case strings.HasSuffix(head, ")"):
			d.proto, d.addr = head[:open], head[open+1:len(head)-1]
		default:
			return mysqlDSN{}, fmt.Errorf("unbalanced parenthesis in %q", head)
		}
	}
	if d.proto != "tcp" && d.proto != "unix" {
		return mysqlDSN{}, fmt.Errorf("protocol %q: want tcp or unix", d.proto)
	}
	return d, nil
}

// withDB is the DSN for another database on the same server, same user.
func (d mysqlDSN) withDB(db string) string {
	var b strings.Builder
	b.WriteString(d.user)
	if d.pass != "" {
		b.WriteString(":" + d.pass)
	}
	fmt.Fprintf(&b, "@%s(%s)/%s", d.proto, d.addr, db)
	if d.params != "" {
		b.WriteString("?" + d.params)
	}
	return b.String()
}

// loopback tells whether the server is on this machine.
func (d mysqlDSN) loopback() bool {
	if d.proto == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(d.addr)
	if err != nil {
		host = d.addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sql runs statements with the mariadb client as the DSN's user. The
// password goes in MYSQL_PWD, not on the command line.
func (d mysqlDSN) sql(ctx context.Context, mariadb, stmts string) error {
	args := []string{"--no-defaults", "--batch", "--connect-timeout=5"}
	if d.proto == "unix" {
		args = append(args, "--socket="+d.addr)
	} else {
		host, port, err := net.SplitHostPort(d.addr)
		if err != nil {
			host, port = d.addr, "3306"
		}
		args = append(args, "--protocol=TCP", "--host="+host, "--port="+port)
	}
	if d.user != "" {
		args = append(args, "--user="+d.user)
	}
	args = append(args, "-e", stmts)
	cmd := exec.CommandContext(ctx, mariadb, args...)
	cmd.Env = append(cleanEnv(), "MYSQL_PWD="+d.pass)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mariadb -e %q: %v: %s", stmts, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// run runs a command to completion within ctx, returning its output in the
// error when it fails.
func run(ctx context.Context, dir string, env []string, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

// childPIDs lists the live (not zombie) children of pid, from /proc.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			kids = append(kids, n)
		}
	}
	return kids
}
