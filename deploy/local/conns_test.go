package local

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// tcpListen is the kernel's TCP_LISTEN state in /proc/net/tcp.
const tcpListen = 0x0a

// connsTo counts, for each pid, its sockets connected to each of servers
// (host:port): conns[i][j] is pid i's to server j. The replica has no
// gauge of its memcached pool, so this looks from outside: the process's
// socket inodes (/proc/PID/fd), then the kernel's TCP table for those
// inodes' peers. A socket counts in any state but LISTEN: one being opened
// or not yet closed still holds a slot of the pool. The fds are read
// before the table, so every socket counted was open over the whole
// reading (an inode is never reused while open, and a closed socket's
// lingering entry has inode 0): sockets that never coexisted are not added
// up.
func connsTo(pids []int, servers []string) ([][]int, error) {
	type peer struct {
		ip   net.IP
		port uint64
	}
	peers := make([]peer, len(servers))
	for j, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port of %s: %w", s, err)
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return nil, fmt.Errorf("%s: not an IP address", s)
		}
		peers[j] = peer{ip, p}
	}

	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	owner := map[uint64]int{} // socket inode → index in pids
	for i, pid := range pids {
		p, err := fs.Proc(pid)
		if err != nil {
			return nil, err
		}
		targets, err := p.FileDescriptorTargets()
		if err != nil {
			return nil, fmt.Errorf("fds of %d: %w", pid, err)
		}
		for _, tg := range targets {
			ino, ok := strings.CutPrefix(tg, "socket:[")
			if !ok {
				continue
			}
			if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
				owner[n] = i
			}
		}
	}
	// Both tables: the replicas' pids share this process's network
	// namespace, and an IPv4 peer may be reached over an IPv6 socket.
	v4, err := fs.NetTCP()
	if err != nil {
		return nil, err
	}
	v6, err := fs.NetTCP6()
	if err != nil {
		return nil, err
	}
	conns := make([][]int, len(pids))
	for i := range conns {
		conns[i] = make([]int, len(servers))
	}
	// The kernel writes the table in chunks, walking a hash table that
	// changes meanwhile: under churn a socket can appear twice in one
	// reading. Each inode counts once.
	counted := map[uint64]bool{}
	for _, l := range append(v4, v6...) {
		i, ok := owner[l.Inode]
		if !ok || l.Inode == 0 || l.St == tcpListen || counted[l.Inode] {
			continue
		}
		for j, p := range peers {
			if l.RemPort == p.port && l.RemAddr.Equal(p.ip) {
				conns[i][j]++
				counted[l.Inode] = true
			}
		}
	}
	return conns, nil
}
