package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

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
	p, err := b.procs.Start(name, nil, b.bins["nginx"], "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return "", err
	}
	url := "http://" + addr + probe
	return addr, testkit.WaitFor(ctx, p, 10*time.Second, name+" answers", func() error { return testkit.GetOK(ctx, url) })
}
