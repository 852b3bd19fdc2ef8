// Package memcachedtest runs real memcached processes for tests, so a test
// can kill a node and start it again, empty, on the same address.
package memcachedtest

import (
	"bytes"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// Server is one memcached process, killed when the test ends.
type Server struct {
	Addr   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{}
}

// FreeAddr returns a loopback host:port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return testkit.MustFreeAddr(t)
}

// Start runs memcached on addr (loopback; "" picks a free port) and waits
// until it accepts connections. Without the memcached binary the test is
// skipped, or failed when LOCALLIBRARY_TEST_REQUIRE_SERVICES=1.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	bin, err := testkit.MemcachedBin()
	if err != nil {
		testkit.Unavailable(t, "%v", err)
	}
	if addr == "" {
		addr = FreeAddr(t)
	}
	args, err := testkit.MemcachedArgs(addr, 16, "-t", "1")
	if err != nil {
		t.Fatalf("memcachedtest: %v", err)
	}
	s := &Server{Addr: addr, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start memcached: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.Kill)

	// Poll until it listens; memcached has no readiness signal.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := testkit.Dial(addr)
		if err == nil {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("memcached on %s exited: %s", addr, s.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached on %s not listening after 5s: %v", addr, err)
		}
	}
}

// Cluster starts n servers on free loopback ports.
func Cluster(t testing.TB, n int) ([]*Server, []string) {
	t.Helper()
	var servers []*Server
	var addrs []string
	for range n {
		s := Start(t, "")
		servers = append(servers, s)
		addrs = append(addrs, s.Addr)
	}
	return servers, addrs
}

// Kill kills the process (SIGKILL: no goodbye to clients) and waits for it.
func (s *Server) Kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Stop freezes the process (SIGSTOP): its sockets stay open and accept
// connections, but nothing answers, as with a hung memcached. Continue
// resumes it.
//
// It returns once every thread of the process is stopped: a signal reaches
// a thread group thread by thread, and on a loaded machine a worker thread
// could otherwise still answer a request sent after Stop.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
	for deadline := time.Now().Add(10 * time.Second); !s.allStopped(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("memcached on %s: not stopped 10s after SIGSTOP", s.Addr)
		}
	}
}

// allStopped tells whether every thread of the process is stopped (state T).
func (s *Server) allStopped() bool {
	threads, err := procfs.AllThreads(s.cmd.Process.Pid)
	if err != nil {
		return false
	}
	for _, th := range threads {
		if st, err := th.Stat(); err != nil || st.State != "T" {
			return false
		}
	}
	return len(threads) > 0
}

// Continue resumes a stopped process (SIGCONT).
func (s *Server) Continue(t testing.TB) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("memcached on %s: %v: %v", s.Addr, sig, err)
	}
}

// Stat returns one of the server's "stats" figures, e.g. curr_connections
// or total_connections, read over a connection of its own.
func (s *Server) Stat(t testing.TB, name string) int {
	t.Helper()
	st, err := testkit.MemcachedStats(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := st[name]
	if !ok {
		t.Fatalf("memcached on %s has no stat %q", s.Addr, name)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("stat %s = %q", name, v)
	}
	return n
}

// Restart kills the server and starts a new, empty one on its address.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Kill()
	return Start(t, s.Addr)
}

// Usage is what the process has spent so far: read and write system calls
// (/proc/PID/io syscr + syscw: read(2) and write(2) and their kin; not
// sendmsg, which memcached answers with) and CPU time.
func (s *Server) Usage(t testing.TB) (syscalls uint64, cpu time.Duration) {
	t.Helper()
	p, err := procfs.NewProc(s.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	io, err := p.IO()
	if err != nil {
		t.Fatal(err)
	}
	cpu, err = testkit.CPUTime(s.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return io.SyscR + io.SyscW, cpu
}
