package local

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// connsTo counts, for each pid, its sockets connected to each of servers
// (host:port): conns[i][j] is pid i's to server j. The replica has no
// gauge of its memcached pool, so this looks from outside: the process's
// socket inodes (/proc/PID/fd), then the sockets whose peer is a server,
// with their inodes, from ss (the binary at ssBin). A socket counts in any
// state but LISTEN and TIME_WAIT (which has no inode): one being opened or
// not yet closed holds a slot of the pool.
//
// ss, not /proc/net/tcp: the kernel filters its netlink dump by state and
// port, where the text table lists every socket of the machine, thousands
// of TIME_WAIT under this load, and takes a few hundred milliseconds to
// read on a busy 2-core machine, longer than the sampling's pace.
//
// The fds are read first, so every socket counted was open over the whole
// reading (an inode is not reused while its socket is open): sockets that
// never coexisted are not added up.
func connsTo(ssBin string, pids []int, servers []string) ([][]int, error) {
	type peer struct {
		ip   net.IP
		port int
	}
	peers := make([]peer, len(servers))
	filter := []string{"("}
	for j, s := range servers {
		ip, port, err := splitAddr(s)
		if err != nil {
			return nil, err
		}
		peers[j] = peer{ip, port}
		if j > 0 {
			filter = append(filter, "or")
		}
		filter = append(filter, "dport", "=", fmt.Sprintf(":%d", port))
	}
	filter = append(filter, ")")

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

	// -t TCP, -n numeric, -H no header, -e the inode. With more than one
	// state selected, every line starts: state, Recv-Q, Send-Q, local, peer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	args := append([]string{"-tnHe", "state", "connected", "exclude", "time-wait"}, filter...)
	out, err := exec.CommandContext(ctx, ssBin, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("ss %s: %w", strings.Join(args, " "), err)
	}
	conns := make([][]int, len(pids))
	for i := range conns {
		conns[i] = make([]int, len(servers))
	}
	// A dump that spans several reads of a changing table can list a
	// socket twice: each inode counts once.
	counted := map[uint64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var inode uint64
		for _, x := range f {
			if v, ok := strings.CutPrefix(x, "ino:"); ok {
				inode, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		if len(f) < 6 || inode == 0 {
			return nil, fmt.Errorf("ss: a line without a peer or an inode: %q", line)
		}
		i, ok := owner[inode]
		if !ok || counted[inode] {
			continue
		}
		ip, port, err := splitAddr(f[4])
		if err != nil {
			return nil, fmt.Errorf("ss: peer of %q: %w", line, err)
		}
		for j, p := range peers {
			if port == p.port && ip.Equal(p.ip) {
				conns[i][j]++
				counted[inode] = true
			}
		}
	}
	return conns, nil
}

// splitAddr splits host:port (IPv6 in brackets) into an IP and a port.
func splitAddr(addr string) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("%s: not an IP address", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, 0, fmt.Errorf("port of %s: %w", addr, err)
	}
	return ip, p, nil
}
