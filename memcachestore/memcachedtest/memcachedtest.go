// Package memcachedtest runs real memcached processes for tests, so a test
// can kill a node and start it again, empty, on the same address.
package memcachedtest

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs memcached on addr (loopback; "" picks a free port) and waits
// until it accepts connections. Without the memcached binary the test is
// skipped, or failed when LOCALLIBRARY_TEST_REQUIRE_SERVICES=1.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if os.Getenv("LOCALLIBRARY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("memcached binary not found (apt-get install memcached) and LOCALLIBRARY_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("memcached binary not found (apt-get install memcached)")
	}
	if addr == "" {
		addr = FreeAddr(t)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("memcachedtest: %v", err)
	}
	args := []string{"-l", host, "-p", port, "-U", "0", "-m", "16", "-t", "1"}
	if os.Geteuid() == 0 { // memcached refuses to run as root without -u
		name := "memcache"
		if _, err := user.Lookup(name); err != nil {
			name = "nobody"
		}
		args = append(args, "-u", name)
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
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
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
func (s *Server) Stop(t testing.TB) { s.signal(t, syscall.SIGSTOP) }

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
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		t.Fatalf("stats from %s: %v", s.Addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatalf("stats from %s: %v", s.Addr, err)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 1 && f[0] == "END" {
			break
		}
		if len(f) == 3 && f[0] == "STAT" && f[1] == name {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("stat %s = %q", name, f[2])
			}
			return n
		}
	}
	t.Fatalf("memcached on %s has no stat %q (%v)", s.Addr, name, sc.Err())
	return 0
}

// Restart kills the server and starts a new, empty one on its address.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Kill()
	return Start(t, s.Addr)
}
