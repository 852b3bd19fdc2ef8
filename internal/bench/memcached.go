package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// memcached is the harness's own memcached, on a free loopback port.
type memcached struct {
	addr    string
	proc    *testkit.Proc
	version string
}

func startMemcached(ctx context.Context, ps *testkit.Procs) (*memcached, error) {
	// -t 1: one worker thread is plenty next to a 2-core load.
	node, err := testkit.StartMemcached(ctx, ps, "memcached", "", 256, "-c", "4096", "-t", "1")
	if err != nil {
		return nil, err
	}
	m := &memcached{addr: node.Addr, proc: node.Proc}
	st, err := m.stats()
	if err != nil {
		return nil, err
	}
	m.version = st["version"]
	return m, nil
}

// stats returns memcached's general statistics.
func (m *memcached) stats() (map[string]string, error) { return testkit.MemcachedStats(m.addr) }

// commands counts the protocol commands memcached has served: each is one
// round trip from the service (gets of one key, sets, adds, incrs, touches,
// deletes).
func commands(st map[string]string) int64 {
	return testkit.StatInt(st, "cmd_get") + testkit.StatInt(st, "cmd_set") + testkit.StatInt(st, "cmd_touch") +
		testkit.StatInt(st, "incr_hits") + testkit.StatInt(st, "incr_misses") +
		testkit.StatInt(st, "decr_hits") + testkit.StatInt(st, "decr_misses") +
		testkit.StatInt(st, "delete_hits") + testkit.StatInt(st, "delete_misses")
}

// itemSizes lists every key with its item size as memcached accounts it
// (key, value, flags and the item header), from lru_crawler metadump.
func (m *memcached) itemSizes() (map[string]int, error) {
	mc, err := testkit.DialMemcached(m.addr)
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	lines, err := mc.Lines("lru_crawler metadump all")
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
	mc, err := testkit.DialMemcached(m.addr)
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	br := mc.Reader()
	out := make(map[string]int, len(keys))
	for _, k := range keys {
		out[k] = -1
		if err := mc.Send("get " + k); err != nil {
			return nil, err
		}
		for {
			line, err := br.ReadString('\n')
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
			if _, err := br.Discard(n + 2); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
