package memcachestore

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// liar is a fake memcached: its first answer to a get of "0:sess" is lie,
// every other answer is honest (sess holds "data", its counter 7).
type liar struct {
	ln   net.Listener
	lie  string
	lied atomic.Bool
}

func startLiar(t *testing.T, lie string) *liar {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &liar{ln: ln, lie: lie}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serve(c)
		}
	}()
	return l
}

func (l *liar) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		var out string
		switch {
		case len(f) == 0:
			return
		case f[0] == "version":
			out = "VERSION fake\r\n"
		case f[0] == "incr":
			out = "7\r\n"
		case f[0] == "get":
			for _, k := range f[1:] {
				if k != "0:sess" {
					continue
				}
				if l.lied.CompareAndSwap(false, true) {
					out += l.lie
					if strings.HasSuffix(l.lie, "!close") {
						c.Write([]byte(strings.TrimSuffix(out, "!close")))
						return
					}
				} else {
					out += "VALUE 0:sess 0 4\r\ndata\r\n"
				}
			}
			out += "END\r\n"
		default:
			out = "ERROR\r\n"
		}
		if _, err := c.Write([]byte(out)); err != nil {
			return
		}
	}
}

// TestBadRepliesCostOneExchange: whatever memcached answers, the page
// gets an error (not a panic, not a giant allocation), the pool gets its
// connection slot back, and the next page is served.
func TestBadRepliesCostOneExchange(t *testing.T) {
	lies := []struct {
		name, lie string
		down      bool // the answer breaks off: the node waits for a probe
	}{
		{"size of 4 GiB", "VALUE 0:sess 0 4294967295\r\n", false},
		{"size past the item limit", "VALUE 0:sess 0 1048577\r\n", false},
		{"size past 64 bits", "VALUE 0:sess 0 99999999999999999999999\r\n", false},
		{"negative size", "VALUE 0:sess 0 -4\r\ndata\r\n", false},
		{"garbage size", "VALUE 0:sess 0 4x\r\ndata\r\n", false},
		{"no size", "VALUE 0:sess 0\r\ndata\r\n", false},
		{"a cas field", "VALUE 0:sess 0 4 99\r\ndata\r\n", false},
		{"wrong key", "VALUE 0:other 0 4\r\ndata\r\n", false},
		{"extra value", "VALUE 0:sess 0 4\r\ndata\r\nVALUE 0:sess 0 4\r\ndata\r\n", false},
		{"data not ended by CRLF", "VALUE 0:sess 0 4\r\ndataXX", false},
		{"line without CR", "VALUE 0:sess 0 4\ndata\r\n", false},
		{"short data, then hang up", "VALUE 0:sess 0 100\r\ndata!close", true},
		{"no line at all", "!close", true},
	}
	for _, tt := range lies {
		t.Run(tt.name, func(t *testing.T) {
			l := startLiar(t, tt.lie)
			probed := make(probes, 1)
			s := mustNewStorage(t, Config{Servers: []string{l.ln.Addr().String()}, Timeout: 500 * time.Millisecond}, hooks{probed: probed.done})
			n := s.nodes[0]
			val, _, counted, err := s.GetAndIncrement("sess", "v:sess")
			if err == nil || !errors.Is(err, ErrUnavailable) || val != nil || counted {
				t.Fatalf("= %q, %v, %v; want no value and ErrUnavailable", val, counted, err)
			}
			if free := n.pool.idle(); free != n.pool.size() {
				t.Fatalf("%d of %d slots back in the pool", free, n.pool.size())
			}
			if n.down.Load() != tt.down {
				t.Fatalf("node down = %v, want %v", n.down.Load(), tt.down)
			}
			probed.waitUp(t, n)
			val, count, counted, err := s.GetAndIncrement("sess", "v:sess")
			if err != nil || string(val) != "data" || count != 7 || !counted {
				t.Fatalf("the next page = %q, %d, %v, %v; want data, 7", val, count, counted, err)
			}
			if got, err := s.Get("sess"); err != nil || string(got) != "data" {
				t.Fatalf("Get = %q, %v", got, err)
			}
		})
	}
}
