package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/valyala/fasthttp"
)

// build compiles the service as it is deployed.
func build(ctx context.Context, root, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "noembeddeddb", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// freePort asks the kernel for a loopback port nobody is listening on.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// process is a child the soak started: in its own process group, so a
// Ctrl-C in the terminal reaches only the soak, which then stops it in
// order; killed with the soak if the soak itself is killed.
type process struct {
	name        string
	addr        string
	metricsAddr string // the service's /metrics listener
	logPath     string
	cmd         *exec.Cmd
	done        chan struct{}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.name, grace)
	}
}

// logTail is the end of the process's log, for error messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

type processes struct {
	keep bool
	mu   sync.Mutex
	list []*process
}

func (ps *processes) start(name, addr, logPath string, env []string, bin string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !ps.keep {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, addr: addr, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// stopAll stops the processes in the reverse of their start order.
func (ps *processes) stopAll() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var errs []error
	for i := len(ps.list) - 1; i >= 0; i-- {
		errs = append(errs, ps.list[i].stop(15*time.Second))
	}
	ps.list = nil
	return errors.Join(errs...)
}

func (ps *processes) describe(w io.Writer) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	fmt.Fprintln(w, "\nleft running (-keep-running-services):")
	var pids []string
	for _, p := range ps.list {
		if !p.exited() {
			fmt.Fprintf(w, "  %-10s pid %-7d %s  log %s\n", p.name, p.pid(), p.addr, p.logPath)
			pids = append(pids, "-"+strconv.Itoa(p.pid()))
		}
	}
	if len(pids) > 0 {
		fmt.Fprintf(w, "stop them with: kill -- %s\n", strings.Join(pids, " "))
	}
}

// startMemcached starts node i on addr ("": a free port).
func (ps *processes) startMemcached(ctx context.Context, out string, i int, addr string, mb int) (*process, error) {
	if addr == "" {
		var err error
		if addr, err = freePort(); err != nil {
			return nil, err
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := ps.start("memcached", addr, filepath.Join(out, fmt.Sprintf("memcached-%d.log", i+1)), nil,
		"memcached", "-u", "memcache", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", strconv.Itoa(mb))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return p, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("memcached did not start on %s: %v\n%s", addr, err, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (ps *processes) startService(ctx context.Context, bin, out, dsn, memcached string, extra []string) (*process, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	env := append([]string{
		"LOCALLIBRARY_HTTP_ADDR=" + addr,
		"LOCALLIBRARY_METRICS_ADDR=" + metricsAddr,
		"LOCALLIBRARY_MYSQL_DSN=" + dsn,
		"LOCALLIBRARY_MEMCACHED_SERVERS=" + memcached,
		"LOCALLIBRARY_SECRET_KEY=soak-secret-key-0123456789abcdef0123456789",
		"LOCALLIBRARY_LOG_LEVEL=warn",
		"LOCALLIBRARY_SHUTDOWN_DRAIN=0s", // nobody is behind a load balancer here
		// The soak plays the load balancer: each browser's address comes in
		// X-Forwarded-For.
		"LOCALLIBRARY_TRUSTED_PROXIES=127.0.0.1/32",
		"LOCALLIBRARY_PROXY_HEADER=X-Forwarded-For",
	}, extra...)
	p, err := ps.start("service", addr, filepath.Join(out, "service.log"), env, bin)
	if err != nil {
		return nil, err
	}
	p.metricsAddr = metricsAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, err := fasthttp.GetTimeout(nil, "http://"+addr+"/readyz", time.Second)
		if err == nil && status == fasthttp.StatusOK {
			return p, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("service not ready on %s (status %d, %v)\n%s", addr, status, err, p.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// memcachedStats reads memcached's "stats" as name → value.
func memcachedStats(addr string) (map[string]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("stats\r\n")); err != nil {
		return nil, err
	}
	stats := map[string]string{}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		line := sc.Text()
		if line == "END" {
			return stats, nil
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			stats[f[1]] = f[2]
		}
	}
	return nil, fmt.Errorf("memcached stats: %v", sc.Err())
}

// vmHWM is the peak resident set of a process, in bytes.
func vmHWM(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
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

// prepareCatalog creates the database when missing, migrates it, seeds it
// when it has no books (with the service's own commands), and reads the
// books' ids and titles.
func prepareCatalog(ctx context.Context, bin, dsn, out string) (catalog, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return catalog{}, fmt.Errorf("-dsn: %w", err)
	}
	name := cfg.DBName
	if name == "" || strings.ContainsAny(name, "`") {
		return catalog{}, fmt.Errorf("-dsn must name a database, such as root@tcp(127.0.0.1:3306)/soak_library")
	}
	if !isLoopback(cfg.Addr) {
		return catalog{}, fmt.Errorf("-dsn: %s is not a loopback address", cfg.Addr)
	}
	admin := cfg.Clone()
	admin.DBName = ""
	if err := withDB(ctx, admin.FormatDSN(), func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
		return err
	}); err != nil {
		return catalog{}, fmt.Errorf("create database %s: %w", name, err)
	}
	env := []string{"LOCALLIBRARY_MYSQL_DSN=" + dsn, "LOCALLIBRARY_LOG_LEVEL=warn"}
	logPath := filepath.Join(out, "catalog.log")
	if err := runLogged(ctx, logPath, env, bin, "migrate"); err != nil {
		return catalog{}, err
	}
	var c catalog
	err = withDB(ctx, dsn, func(db *sql.DB) error {
		var books int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM book").Scan(&books); err != nil {
			return err
		}
		if books == 0 {
			if err := runLogged(ctx, logPath, env, bin, "seed", "--authors", "100", "--books", "1000", "--copies-per-book", "3"); err != nil {
				return err
			}
		}
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
		return catalog{}, fmt.Errorf("catalog %s: %w", name, err)
	}
	if len(c.books) == 0 || c.authors == 0 {
		return catalog{}, fmt.Errorf("catalog %s has %d books and %d authors: nothing to read", name, len(c.books), c.authors)
	}
	c.bookPages = min(100, (len(c.books)+9)/10) // 10 a page, the first 100 pages
	return c, nil
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

func runLogged(ctx context.Context, logPath string, env []string, bin string, args ...string) error {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var tail bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.MultiWriter(logFile, &tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("locallibrary %s: %w\n%s", strings.Join(args, " "), err, tail.String())
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func maskedDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "xxxxx"
	}
	return cfg.FormatDSN()
}

// cpuTicks is the machine's busy CPU time (every state but idle and
// iowait) from /proc/stat, and the CPU time of each given process, in
// clock ticks (USER_HZ, 100 a second on Linux).
type cpuTicks struct {
	machine float64
	procs   []float64
}

func readCPU(pids ...int) (cpuTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTicks{}, errors.New("unexpected /proc/stat")
	}
	var t cpuTicks
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		t.machine += n
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return cpuTicks{}, err
		}
		// The command name, in parentheses, may hold spaces: count from after it.
		_, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if len(f) < 13 {
			return cpuTicks{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		t.procs = append(t.procs, utime+stime)
	}
	return t, nil
}

// others is the CPU time since before that went to neither of the
// processes watched: MariaDB, and whatever else runs on the machine.
func (t cpuTicks) others(before cpuTicks) float64 {
	n := t.machine - before.machine
	for i := range t.procs {
		n -= t.procs[i] - before.procs[i]
	}
	return n
}
