package testkit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MemcachedBin finds the memcached binary on PATH or where Debian puts it.
func MemcachedBin() (string, error) {
	return FindBin("memcached", "memcached", "/usr/bin", "/usr/local/bin")
}

// FindBin looks name up on PATH and then in dirs (/usr/sbin is not on
// every user's PATH); the error says which Debian package to install.
func FindBin(name, pkg string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not installed (Debian: apt-get install %s)", name, pkg)
}

// MemcachedArgs are the flags of a memcached on addr (host:port) with
// megabytes of memory and no UDP, run as an unprivileged user when started
// as root (which memcached refuses), followed by extra flags (such as
// "-t", "1": one worker thread is plenty next to a load on two cores).
func MemcachedArgs(addr string, megabytes int, extra ...string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("memcached address %q: %w", addr, err)
	}
	args := []string{"-l", host, "-p", port, "-U", "0", "-m", strconv.Itoa(megabytes)}
	if os.Geteuid() == 0 {
		name := "memcache"
		if _, err := user.Lookup(name); err != nil {
			name = "nobody"
		}
		args = append(args, "-u", name)
	}
	return append(args, extra...), nil
}

// Memcached is one memcached node started by StartMemcached.
type Memcached struct {
	Addr string
	Proc *Proc
}

// StartMemcached runs memcached as child name of ps, on addr ("" picks a
// free loopback port), and waits until it accepts connections.
func StartMemcached(ctx context.Context, ps *Procs, name, addr string, megabytes int, extra ...string) (*Memcached, error) {
	bin, err := MemcachedBin()
	if err != nil {
		return nil, err
	}
	if addr == "" {
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	args, err := MemcachedArgs(addr, megabytes, extra...)
	if err != nil {
		return nil, err
	}
	p, err := ps.Start(name, nil, bin, args...)
	if err != nil {
		return nil, err
	}
	// memcached has no readiness signal: poll until it listens.
	if err := WaitFor(ctx, p, 10*time.Second, name+" listens on "+addr, func() error { return Dial(addr) }); err != nil {
		return nil, err
	}
	return &Memcached{Addr: addr, Proc: p}, nil
}

// MemcachedConn is one text-protocol connection, for reading a server's
// figures apart from the service's own connections.
type MemcachedConn struct {
	c  net.Conn
	br *bufio.Reader
}

// DialMemcached connects to addr; every exchange must end within 30s.
func DialMemcached(addr string) (*MemcachedConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &MemcachedConn{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (mc *MemcachedConn) Close() error { return mc.c.Close() }

// Reader is the connection's buffered reply stream, for replies that
// carry data blocks.
func (mc *MemcachedConn) Reader() *bufio.Reader { return mc.br }

// Send writes one command line.
func (mc *MemcachedConn) Send(cmd string) error {
	_, err := mc.c.Write([]byte(cmd + "\r\n"))
	return err
}

// Lines sends cmd and returns the reply's lines up to "END", which ends
// it (stats, lru_crawler metadump).
func (mc *MemcachedConn) Lines(cmd string) ([]string, error) {
	if err := mc.Send(cmd); err != nil {
		return nil, err
	}
	var out []string
	for {
		line, err := mc.br.ReadString('\n')
		if err != nil {
			return out, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "END":
			return out, nil
		case strings.HasPrefix(line, "ERROR"), strings.HasPrefix(line, "CLIENT_ERROR"), strings.HasPrefix(line, "SERVER_ERROR"):
			return out, fmt.Errorf("memcached %q: %s", cmd, line)
		}
		out = append(out, line)
	}
}

// MemcachedStats reads the server's general statistics ("stats") as
// name → value.
func MemcachedStats(addr string) (map[string]string, error) {
	mc, err := DialMemcached(addr)
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	lines, err := mc.Lines("stats")
	if err != nil {
		return nil, fmt.Errorf("stats from %s: %w", addr, err)
	}
	st := make(map[string]string, len(lines))
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "STAT" {
			st[f[1]] = f[2]
		}
	}
	return st, nil
}

// StatInt is a whole-number statistic (0 when missing).
func StatInt(st map[string]string, name string) int64 {
	n, _ := strconv.ParseInt(st[name], 10, 64)
	return n
}
