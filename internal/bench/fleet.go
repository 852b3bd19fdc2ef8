package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/procfs"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// nginxConf is the fleet's load balancer: round robin over the replicas
// with kept-alive upstream connections (without them each request is a
// new loopback connection, and TIME_WAIT soon takes every port), and no
// retry on another replica, which would count a visit twice.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`# written by internal/bench (fleet.go)
daemon off;
{{if .Root}}user root;
{{end}}worker_processes 2;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path {{.Dir}}/body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
    upstream replicas {
{{range .Replicas}}        server {{.}};
{{end}}        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen {{.Addr}};
        keepalive_requests 1000000;
        location / {
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_next_upstream off;
        }
    }
}
`))

// startFleet starts bd's replicas on the 3k catalog and the fleet's
// memcached nodes, and nginx in front of them, on a free port with its
// files in the temporary folder.
func (b *bench) startFleet(ctx context.Context, bd *build) error {
	var upstream []string
	for i := range fleetReplicas {
		// The home page reads no table but the counts' row: a small pool
		// keeps 6 replicas (12 with -rev) well inside max_connections.
		env := b.serviceEnv(b.catalogs["3k"], b.fleetNodes, "LOCALLIBRARY_DB_MAX_OPEN_CONNS=2")
		s, err := b.startService(ctx, fmt.Sprintf("fleet-%d%s", i+1, bd.label), bd.bin, env)
		if err != nil {
			return err
		}
		bd.fleet = append(bd.fleet, s)
		upstream = append(upstream, s.Addr)
	}
	var err error
	bd.lbAddr, err = b.startNginx(ctx, "nginx"+bd.label, upstream, "/livez")
	return err
}

// startCeilingFleet starts fleetReplicas ceilings behind nginx: the fleet's
// way (nginx, then one of six processes) with the least page behind it, so
// that the fleet's ratio to it says what the page costs there.
func (b *bench) startCeilingFleet(ctx context.Context) error {
	var upstream []string
	for i := range fleetReplicas {
		p, addr, err := b.startCeiling(ctx, fmt.Sprintf("ceiling-fleet-%d", i+1))
		if err != nil {
			return err
		}
		b.ceilFleet, upstream = append(b.ceilFleet, p), append(upstream, addr)
	}
	var err error
	b.ceilFleetAddr, err = b.startNginx(ctx, "nginx-ceiling", upstream, "/")
	return err
}

// startNginx starts nginx in front of upstream on a free port, its files in
// the temporary folder, and returns its address once probe answers there.
func (b *bench) startNginx(ctx context.Context, name string, upstream []string, probe string) (string, error) {
	bin, err := testkit.FindBin("nginx", "nginx", "/usr/sbin")
	if err != nil {
		return "", err
	}
	addr, err := testkit.FreeAddr()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "nginx.conf")
	var text strings.Builder
	if err := nginxConf.Execute(&text, map[string]any{"Root": os.Geteuid() == 0, "Dir": dir, "Addr": addr, "Replicas": upstream}); err != nil {
		return "", err
	}
	if err := os.WriteFile(conf, []byte(text.String()), 0o644); err != nil {
		return "", err
	}
	// -e: the error log is opened before the configuration is read.
	p, err := b.procs.Start(name, nil, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return "", err
	}
	url := "http://" + addr + probe
	return addr, testkit.WaitFor(ctx, p, 10*time.Second, name+" answers", func() error { return testkit.GetOK(ctx, url) })
}

// fleetConns is the memcached connections each replica had open at the
// end of a fleet run, by node: the pool caps each at Cap.
type fleetConns struct {
	Target string  `json:"target"`
	Round  int     `json:"round"`
	Cap    int     `json:"cap"`         // LOCALLIBRARY_MEMCACHED_MAX_CONNS, per replica and node
	Conns  [][]int `json:"per_replica"` // [replica][node]
}

// countConns counts, from /proc, each replica's established TCP
// connections to each node: the sockets among its file descriptors whose
// peer port is the node's. (A replica talks to nothing else on those
// ports.)
func countConns(replicas []*testkit.Service, nodes []*mcNode) ([][]int, error) {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return nil, err
	}
	byPort := map[uint64]int{}
	for i, n := range nodes {
		_, p, _ := net.SplitHostPort(n.addr)
		port, _ := strconv.ParseUint(p, 10, 16)
		byPort[port] = i
	}
	nodeOf := map[uint64]int{} // socket inode → node
	for _, table := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
		lines, err := table()
		if err != nil {
			continue // no IPv6 here
		}
		for _, l := range lines {
			if i, ok := byPort[l.RemPort]; ok && l.St == 1 { // ESTABLISHED
				nodeOf[l.Inode] = i
			}
		}
	}
	out := make([][]int, len(replicas))
	for r, s := range replicas {
		out[r] = make([]int, len(nodes))
		p, err := fs.Proc(s.PID())
		if err != nil {
			return nil, err
		}
		fds, err := p.FileDescriptorTargets()
		if err != nil {
			return nil, err
		}
		for _, fd := range fds {
			inode, ok := strings.CutPrefix(fd, "socket:[")
			if !ok {
				continue
			}
			n, _ := strconv.ParseUint(strings.TrimSuffix(inode, "]"), 10, 64)
			if i, ok := nodeOf[n]; ok {
				out[r][i]++
			}
		}
	}
	return out, nil
}
