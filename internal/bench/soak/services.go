package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"

	"github.com/locallibrary/locallibrary/internal/bench/catalogs"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// process is a child the soak started, with the address it serves on.
type process struct {
	*testkit.Proc
	addr        string
	metricsAddr string // the service's /metrics listener
}

// describe lists the children left running (-keep-running-services) and
// how to stop them.
func describe(w io.Writer, ps *testkit.Procs, addrs map[*testkit.Proc]string) {
	fmt.Fprintln(w, "\nleft running (-keep-running-services):")
	var pids []string
	for _, p := range ps.Running() {
		fmt.Fprintf(w, "  %-10s pid %-7d %s  log %s\n", p.Name, p.PID(), addrs[p], p.Log)
		pids = append(pids, "-"+strconv.Itoa(p.PID()))
	}
	if len(pids) > 0 {
		fmt.Fprintf(w, "stop them with: kill -- %s\n", strings.Join(pids, " "))
	}
}

// startMemcached starts node i on addr ("": a free port) with mb MiB of
// item memory.
func startMemcached(ctx context.Context, ps *testkit.Procs, i int, addr string, mb int) (*process, error) {
	node, err := testkit.StartMemcached(ctx, ps, fmt.Sprintf("memcached-%d", i+1), addr, mb)
	if err != nil {
		return nil, err
	}
	return &process{Proc: node.Proc, addr: node.Addr}, nil
}

// keyPrefix keeps the soak's sessions apart from a site's own on a
// memcached it is given.
const keyPrefix = "llsoak:"

func startService(ctx context.Context, ps *testkit.Procs, bin, dsn, memcached string, extra []string) (*process, error) {
	env := append([]string{
		"LOCALLIBRARY_MYSQL_DSN=" + dsn,
		"LOCALLIBRARY_MEMCACHED_SERVERS=" + memcached,
		"LOCALLIBRARY_MEMCACHED_KEY_PREFIX=" + keyPrefix,
		"LOCALLIBRARY_SECRET_KEY=soak-secret-key-0123456789abcdef0123456789",
		"LOCALLIBRARY_LOG_LEVEL=warn",
		"LOCALLIBRARY_SHUTDOWN_DRAIN=0s", // nobody is behind a load balancer here
		// The soak plays the load balancer: each browser's address comes in
		// X-Forwarded-For.
		"LOCALLIBRARY_TRUSTED_PROXIES=127.0.0.1/32",
		"LOCALLIBRARY_PROXY_HEADER=X-Forwarded-For",
	}, extra...)
	s, err := testkit.StartService(ctx, ps, "service", bin, env)
	if err != nil {
		return nil, err
	}
	return &process{Proc: s.Proc, addr: s.Addr, metricsAddr: s.MetricsAddr}, nil
}

// catalog is what the load needs to know of the database's rows.
type catalog struct {
	books     []catalogBook
	authors   int
	bookPages int // book list pages requested: 1..bookPages
}

type catalogBook struct {
	id      int64
	heading []byte // the detail page's <h1>, escaped as the page escapes it
}

var headingTemplate = template.Must(template.New("h1").Parse(`<h1>Title: {{.}}</h1>`))

// prepareCatalog makes the bench's 3k catalog (see package catalogs)
// and reads its books' ids and titles. It returns the catalog's DSN.
func prepareCatalog(ctx context.Context, ps *testkit.Procs, bin, given string, say func(string, ...any)) (string, catalog, error) {
	dbs, err := catalogs.Prepare(ctx, given, []string{"3k"}, ps, bin, say)
	if err != nil {
		return "", catalog{}, err
	}
	dsn, name := dbs["3k"].DSN, dbs["3k"].Name
	var c catalog
	err = withDB(ctx, dsn, func(db *sql.DB) error {
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM author").Scan(&c.authors); err != nil {
			return err
		}
		rows, err := db.QueryContext(ctx, "SELECT id, title FROM book ORDER BY id")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var title string
			if err := rows.Scan(&id, &title); err != nil {
				return err
			}
			var h bytes.Buffer
			if err := headingTemplate.Execute(&h, title); err != nil {
				return err
			}
			c.books = append(c.books, catalogBook{id: id, heading: h.Bytes()})
		}
		return rows.Err()
	})
	if err != nil {
		return "", catalog{}, fmt.Errorf("catalog %s: %w", name, err)
	}
	if len(c.books) == 0 || c.authors == 0 {
		return "", catalog{}, fmt.Errorf("catalog %s has %d books and %d authors: nothing to read", name, len(c.books), c.authors)
	}
	c.bookPages = min(100, (len(c.books)+9)/10) // 10 a page, the first 100 pages
	return dsn, c, nil
}

func withDB(ctx context.Context, dsn string, f func(*sql.DB) error) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	return f(db)
}

// cpuTimes is the machine's busy CPU time (every state but idle and
// iowait) and the CPU time of each given process, in seconds.
type cpuTimes struct {
	machine float64
	procs   []float64
}

func readCPU(pids ...int) (cpuTimes, error) {
	t := cpuTimes{machine: testkit.MachineBusy().Seconds()}
	for _, pid := range pids {
		d, err := testkit.CPUTime(pid)
		if err != nil {
			return cpuTimes{}, err
		}
		t.procs = append(t.procs, d.Seconds())
	}
	return t, nil
}

// others is the CPU time since before that went to neither of the
// processes watched: MariaDB, and whatever else runs on the machine.
func (t cpuTimes) others(before cpuTimes) float64 {
	n := t.machine - before.machine
	for i := range t.procs {
		n -= t.procs[i] - before.procs[i]
	}
	return n
}
