// Package testkit is what the tests, the benchmark (internal/bench) and
// the scale-out proof (deploy/local) share
// to run real parts on loopback: the one check that skips a test whose
// service is not configured (Require), child processes and their logs,
// free ports, memcached nodes, MariaDB scratch databases, browsers that
// keep cookies, follow redirects and submit forms, figures from /proc, and
// the service's /metrics. One file per concern.
package testkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Procs starts child processes and ends exactly those, by pid. Each child
// leads a process group of its own, so a Ctrl-C in the terminal reaches
// only the parent, which then stops its children, and a child's own
// children (nginx's workers) go with it; each is also killed by the kernel
// if the parent dies outright, unless Keep is set.
type Procs struct {
	LogDir string // a child's stdout and stderr go to LogDir/NAME.log
	// Keep leaves the children running if this process dies.
	Keep bool

	pidFile string
	mu      sync.Mutex
	list    []*Proc
}

// NewProcs makes a supervisor whose children log into logDir.
func NewProcs(logDir string) (*Procs, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	return &Procs{LogDir: logDir}, nil
}

// Proc is one child process.
type Proc struct {
	Name string
	Log  string // the file of its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // what Wait returned; read after done
}

// CleanEnv is this process's environment without the settings that would
// make a child differ from run to run or leak a developer's own
// configuration: every LOCALLIBRARY_ variable and the Go runtime's knobs.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "LOCALLIBRARY_"), name == "GOGC", name == "GOMEMLIMIT", name == "GOMAXPROCS", name == "GODEBUG":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// RecordPIDs makes the supervisor write each child's pid and command line
// to file, after ending the children listed there by an earlier run that
// was killed outright (no chance to clean up): each only if its pid still
// runs the command it was recorded with.
func (ps *Procs) RecordPIDs(file string) {
	ps.pidFile = file
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pidText, cmdline, ok := strings.Cut(sc.Text(), " ")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 1 {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", " ") != cmdline {
			continue // gone, or the pid now belongs to something else
		}
		fmt.Fprintf(os.Stderr, "ending pid %d left by an earlier run: %s\n", pid, cmdline)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(file)
}

// command prepares a child; its log is started afresh, or appended to
// (one log for a few steps run in turn).
func (ps *Procs) command(ctx context.Context, name string, env []string, bin string, args []string, appendLog bool) (*exec.Cmd, *os.File, error) {
	logPath := filepath.Join(ps.LogDir, name+".log")
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// exec.Cmd takes the last of duplicate variables, so env wins.
	cmd.Env = append(CleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !ps.Keep {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	return cmd, logFile, nil
}

// Start runs bin with env added to CleanEnv().
func (ps *Procs) Start(name string, env []string, bin string, args ...string) (*Proc, error) {
	cmd, logFile, err := ps.command(context.Background(), name, env, bin, args, false)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logFile.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = append(ps.list, p)
	if ps.pidFile != "" {
		if f, err := os.OpenFile(ps.pidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%d %s\n", cmd.Process.Pid, strings.Join(cmd.Args, " "))
			f.Close()
		}
	}
	return p, nil
}

// Run runs a command to completion within ctx, its output appended to
// LogDir/NAME.log, and returns how long it took; a failure's error ends
// with the log's last lines.
func (ps *Procs) Run(ctx context.Context, name string, env []string, bin string, args ...string) (time.Duration, error) {
	cmd, logFile, err := ps.command(ctx, name, env, bin, args, true)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, Tail(logFile.Name(), 20))
	}
	return took, nil
}

// List lists the children not yet ended by StopAll, oldest first.
func (ps *Procs) List() []*Proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]*Proc(nil), ps.list...)
}

// Running lists the children that have not exited, oldest first.
func (ps *Procs) Running() []*Proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []*Proc
	for _, p := range ps.list {
		if !p.Exited() {
			out = append(out, p)
		}
	}
	return out
}

// StopAll sends SIGTERM to every child still running, all at once, waits
// up to grace for them, then kills what is left with its process group.
// The error names the children that had to be killed.
func (ps *Procs) StopAll(grace time.Duration) error {
	ps.mu.Lock()
	list := ps.list
	ps.mu.Unlock()
	for _, p := range list {
		if !p.Exited() {
			_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
		}
	}
	// One deadline for all: a closed channel, unlike time.After's, tells
	// every later wait that the time is up.
	expired := make(chan struct{})
	timer := time.AfterFunc(grace, func() { close(expired) })
	defer timer.Stop()
	var errs []error
	for _, p := range list {
		select {
		case <-p.done:
		case <-expired:
		}
		if !p.Exited() {
			errs = append(errs, fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.Name, grace))
		}
	}
	ps.KillAll()
	for _, p := range list {
		<-p.done
	}
	ps.mu.Lock()
	ps.list = nil
	ps.mu.Unlock()
	if ps.pidFile != "" {
		_ = os.Remove(ps.pidFile)
	}
	return errors.Join(errs...)
}

// KillAll sends SIGKILL to the process group of every child, also of
// those that exited, whose group could outlive them (nginx's workers).
func (ps *Procs) KillAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		// A group outlives its leader while members remain, and its id is
		// not reused meanwhile: ESRCH when it is empty, nothing worse.
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	}
}

// PID is the child's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited tells whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the child alone (SIGSTOP freezes it: its sockets
// accept connections but nothing answers; SIGCONT resumes it).
func (p *Proc) Signal(sig syscall.Signal) error { return syscall.Kill(p.PID(), sig) }

// Wait waits up to d for the child to exit and returns Wait's result.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.PID(), d)
	}
}

// Stop sends SIGTERM to the child's group, and SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.Name, grace)
	}
}

// Tail returns the last n lines of a file (a child's log), or the error
// reading it.
func Tail(path string, n int) string {
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

// WaitFor polls check every 25ms until it returns nil, p exits (p may be
// nil), ctx ends or limit passes: a readiness poll for processes that
// signal nothing.
func WaitFor(ctx context.Context, p *Proc, limit time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s: %s exited (%v) before that; log:\n%s", what, p.Name, p.err, Tail(p.Log, 15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, limit, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// Guard runs what must not be left behind when this process is
// interrupted (SIGINT, SIGTERM) at a point where no deferred call or
// t.Cleanup will run (a test binary): most recently added first, then the
// signal takes its usual course.
type Guard struct {
	mu    sync.Mutex
	hooks []func()
	stop  chan struct{}
	sigs  chan os.Signal
}

// NewGuard starts watching for the signals until Close.
func NewGuard() *Guard {
	g := &Guard{stop: make(chan struct{}), sigs: make(chan os.Signal, 1)}
	signal.Notify(g.sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-g.sigs:
			g.mu.Lock()
			for i := len(g.hooks) - 1; i >= 0; i-- {
				g.hooks[i]()
			}
			signal.Reset(sig.(syscall.Signal))
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		case <-g.stop:
		}
	}()
	return g
}

// Add adds a hook.
func (g *Guard) Add(hook func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hooks = append(g.hooks, hook)
}

// Close stops watching; the hooks no longer run.
func (g *Guard) Close() {
	signal.Stop(g.sigs)
	close(g.stop)
}

// Each calls fn for every index below n from workers goroutines at once,
// until all are done or ctx ends: how many simulated browsers act in
// parallel.
func Each(ctx context.Context, n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
