package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// memcached is the harness's own memcached, on a free loopback port.
type memcached struct {
	addr    string
	proc    *proc
	version string
}

func startMemcached(ctx context.Context, p *procs, bin string) (*memcached, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("memcached not found (apt-get install -y memcached): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	runAs := "memcache"
	if _, err := user.Lookup(runAs); err != nil {
		runAs = "root" // memcached wants -u when started as root
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// -U 0: no UDP; -t 1: one worker thread is plenty next to a 2-core load.
	pr, err := p.start("memcached", nil, bin, "-u", runAs, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "256", "-c", "4096", "-t", "1")
	if err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, pr, addr, 5*time.Second); err != nil {
		return nil, err
	}
	m := &memcached{addr: addr, proc: pr}
	st, err := m.stats()
	if err != nil {
		return nil, err
	}
	m.version = st["version"]
	return m, nil
}

// mcConn is one text-protocol connection for measuring.
type mcConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (m *memcached) dial() (*mcConn, error) {
	c, err := net.DialTimeout("tcp", m.addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &mcConn{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (mc *mcConn) close() { mc.c.Close() }

// lines sends cmd and returns the reply's lines up to the one that ends it.
func (mc *mcConn) lines(cmd string, end func(string) bool) ([]string, error) {
	if _, err := mc.c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, err
	}
	var out []string
	for {
		line, err := mc.br.ReadString('\n')
		if err != nil {
			return out, err
		}
		line = strings.TrimRight(line, "\r\n")
		if end(line) {
			return out, nil
		}
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "CLIENT_ERROR") || strings.HasPrefix(line, "SERVER_ERROR") {
			return out, fmt.Errorf("memcached %q: %s", cmd, line)
		}
		out = append(out, line)
	}
}

// stats returns memcached's general statistics.
func (m *memcached) stats() (map[string]string, error) {
	mc, err := m.dial()
	if err != nil {
		return nil, err
	}
	defer mc.close()
	lines, err := mc.lines("stats", func(l string) bool { return l == "END" })
	if err != nil {
		return nil, err
	}
	st := make(map[string]string, len(lines))
	for _, l := range lines {
		f := strings.Fields(l) // STAT name value
		if len(f) == 3 {
			st[f[1]] = f[2]
		}
	}
	return st, nil
}

func statInt(st map[string]string, name string) int64 {
	n, _ := strconv.ParseInt(st[name], 10, 64)
	return n
}

// commands counts the protocol commands memcached has served: each is one
// round trip from the service (gets of one key, sets, adds, incrs, touches,
// deletes).
func commands(st map[string]string) int64 {
	return statInt(st, "cmd_get") + statInt(st, "cmd_set") + statInt(st, "cmd_touch") +
		statInt(st, "incr_hits") + statInt(st, "incr_misses") +
		statInt(st, "decr_hits") + statInt(st, "decr_misses") +
		statInt(st, "delete_hits") + statInt(st, "delete_misses")
}

// itemSizes lists every key with its item size as memcached accounts it
// (key, value, flags and the item header), from lru_crawler metadump.
func (m *memcached) itemSizes() (map[string]int, error) {
	mc, err := m.dial()
	if err != nil {
		return nil, err
	}
	defer mc.close()
	lines, err := mc.lines("lru_crawler metadump all", func(l string) bool { return l == "END" })
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int, len(lines))
	for _, l := range lines {
		var key string
		size := -1
		for _, f := range strings.Fields(l) {
			name, val, _ := strings.Cut(f, "=")
			switch name {
			case "key":
				key, _ = url.QueryUnescape(val)
			case "size":
				size, _ = strconv.Atoi(val)
			}
		}
		if key != "" && size >= 0 {
			sizes[key] = size
		}
	}
	return sizes, nil
}

// valueLens returns the length of each key's value (-1 when missing).
func (m *memcached) valueLens(keys []string) (map[string]int, error) {
	mc, err := m.dial()
	if err != nil {
		return nil, err
	}
	defer mc.close()
	out := make(map[string]int, len(keys))
	for _, k := range keys {
		out[k] = -1
		if _, err := mc.c.Write([]byte("get " + k + "\r\n")); err != nil {
			return nil, err
		}
		for {
			line, err := mc.br.ReadString('\n')
			if err != nil {
				return nil, err
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "END" {
				break
			}
			f := strings.Fields(line) // VALUE key flags bytes
			if len(f) < 4 || f[0] != "VALUE" {
				return nil, fmt.Errorf("memcached get %s: unexpected %q", k, line)
			}
			n, _ := strconv.Atoi(f[3])
			out[k] = n
			if _, err := mc.br.Discard(n + 2); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
