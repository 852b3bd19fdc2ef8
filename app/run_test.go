//go:build !noembeddeddb

package app_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/app"
	"github.com/locallibrary/locallibrary/internal/testkit"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/embedded"
)

// service is one running instance of the whole service, as main runs it.
type service struct {
	url, metricsURL string
	stop            context.CancelFunc
	done            chan error
	logs            *testkit.LogBuffer // its JSON log, at LOCALLIBRARY_LOG_LEVEL (error unless env says)
}

// startService runs app.Run with env (plus a free loopback port) until the
// test ends, and waits until it answers /livez.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	addr, metricsAddr := freePort(t), freePort(t)
	vars := map[string]string{"LOCALLIBRARY_HTTP_ADDR": addr, "LOCALLIBRARY_METRICS_ADDR": metricsAddr,
		"LOCALLIBRARY_SHUTDOWN_DRAIN": "1ms", "LOCALLIBRARY_LOG_LEVEL": "error", "LOCALLIBRARY_SECRET_KEY": testSecretKey}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{url: "http://" + addr, metricsURL: "http://" + metricsAddr, stop: cancel, done: make(chan error, 1), logs: new(testkit.LogBuffer)}
	go func() { s.done <- app.Run(ctx, nil, func(k string) string { return vars[k] }, s.logs) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if status, _ := fetch(s.url + "/livez"); status == 200 {
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("service exited at start: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("service did not answer /livez within 60s")
		}
	}
}

var client = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// fetch GETs url with an optional session cookie; status 0 means no answer.
func fetch(url string, cookie ...*http.Cookie) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	for _, c := range cookie {
		req.AddCookie(c)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestGracefulShutdown(t *testing.T) {
	s := startService(t, map[string]string{"LOCALLIBRARY_SHUTDOWN_DRAIN": "1s", "LOCALLIBRARY_SHUTDOWN_TIMEOUT": "2s"})
	if status, _ := fetch(s.url + "/readyz"); status != 200 {
		t.Fatalf("/readyz = %d before shutdown", status)
	}
	started := time.Now()
	s.stop() // SIGTERM
	for {
		status, _ := fetch(s.url + "/readyz")
		if status == 503 {
			break
		}
		if time.Since(started) > 500*time.Millisecond {
			t.Fatalf("/readyz still %d after SIGTERM", status)
		}
	}
	resp, err := client.Get(s.url + "/catalog/books/")
	if err != nil {
		t.Fatalf("while draining: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("while draining, a page answered %d", resp.StatusCode)
	}
	if !resp.Close {
		// Else a keep-alive client sends its next request on a connection
		// the shutdown is about to close.
		t.Error("while draining, a page kept its connection open; want Connection: close")
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil (exit code 0)", err)
		}
		if took := time.Since(started); took < time.Second {
			t.Errorf("stopped after %v, before the 1s drain ended", took)
		}
		s.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("service did not stop within 10s")
	}
}

// A connection still open when the shutdown timeout passes is cut, and the
// log says so: an operator sees why a client lost its request.
func TestShutdownTimeoutIsLogged(t *testing.T) {
	// The drain gives the server time to read the request's first bytes,
	// after which the shutdown no longer takes the connection for idle.
	s := startService(t, map[string]string{"LOCALLIBRARY_SHUTDOWN_DRAIN": "500ms",
		"LOCALLIBRARY_SHUTDOWN_TIMEOUT": "300ms", "LOCALLIBRARY_LOG_LEVEL": "warn"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	if _, err := io.WriteString(conn, "GET /catalog/ HTTP/1.1\r\nHost: x\r\n"); err != nil { // headers never end
		t.Fatal(err)
	}
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("service did not stop within 10s")
	}
	if !strings.Contains(s.logs.String(), "shutdown timeout passed") {
		t.Errorf("no warning about the connections cut at shutdown; log:\n%s", s.logs)
	}
}

// Ctrl-C while the service starts (the embedded engine migrating, say)
// stops it quietly: what fails then fails because of the signal, and is
// no error to show the person who pressed it.
func TestStopWhileStartingIsNoError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := map[string]string{"LOCALLIBRARY_HTTP_ADDR": freePort(t), "LOCALLIBRARY_METRICS_ADDR": freePort(t)}
	var out strings.Builder
	if err := app.Run(ctx, nil, func(k string) string { return env[k] }, &out); err != nil {
		t.Errorf("serve stopped while starting: %v, want nil", err)
	}
	if !strings.Contains(out.String(), "stopped while starting") {
		t.Errorf("the log does not say it stopped while starting:\n%s", out.String())
	}
}

func TestMetricsHaveAListenerOfTheirOwn(t *testing.T) {
	s := startService(t, nil)
	fetch(s.url + "/catalog/books/")
	if status, _ := fetch(s.url + "/metrics"); status != 404 {
		t.Errorf("/metrics on the public listener: %d, want 404", status)
	}
	status, body := fetch(s.metricsURL + "/metrics")
	if want := `locallibrary_http_request_duration_seconds_count{method="GET",route="/catalog/books/",status="200"} 1`; status != 200 || !strings.Contains(body, want) {
		t.Errorf("/metrics on the metrics listener: %d, want 200 with %s", status, want)
	}
	if status, _ := fetch(s.metricsURL + "/catalog/books/"); status != 404 {
		t.Errorf("a page on the metrics listener: %d, want 404", status)
	}
}

// flakyProxy forwards TCP to a backend and can be cut, as a MySQL failover
// or network partition cuts it: open connections drop, new ones are refused.
type flakyProxy struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	down    bool
	conns   []net.Conn
}

func startProxy(t *testing.T, backend string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, backend: backend}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *flakyProxy) addr() string { return p.ln.Addr().String() }

func (p *flakyProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.backend)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}

func (p *flakyProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// waitFor polls check until it holds or the time is up.
func waitFor(t *testing.T, what string, limit time.Duration, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMySQLOutage(t *testing.T) {
	dsn := seededEmbeddedDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, cfg.Addr)
	cfg.Addr = proxy.addr()
	proxied := cfg.FormatDSN()
	s := startService(t, map[string]string{
		"LOCALLIBRARY_MYSQL_DSN":     proxied,
		"LOCALLIBRARY_QUERY_TIMEOUT": "500ms",
		"LOCALLIBRARY_COUNTS_TTL":    "50ms",
	})
	cookie := &http.Cookie{Name: "sessionid", Value: "AAAAAAAAAAAAAAAAAAAAAA"}
	if status, body := fetch(s.url+"/catalog/", cookie); status != 200 || !strings.Contains(body, "<strong>Books:</strong> 30") {
		t.Fatalf("before the outage: %d\n%s", status, body)
	}

	proxy.setDown(true)
	waitFor(t, "home page marks its counts stale", 5*time.Second, func() bool {
		_, body := fetch(s.url+"/catalog/", cookie)
		return strings.Contains(body, "may be out of date")
	})
	for _, path := range []string{"/catalog/books/", "/catalog/book/1", "/catalog/author/1"} {
		start := time.Now()
		req, _ := http.NewRequest("GET", s.url+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s during the outage: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "The catalog is unavailable") {
			t.Errorf("%s during the outage: %d, Retry-After %q", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s took %v: a query had no deadline", path, took)
		}
	}
	status, body := fetch(s.url+"/catalog/", cookie)
	if status != 200 || !strings.Contains(body, "may be out of date") || !strings.Contains(body, "<strong>Books:</strong> 30") {
		t.Errorf("home page during the outage: %d, want the last counts marked stale\n%s", status, body)
	}
	if status, _ := fetch(s.url + "/readyz"); status != 503 {
		t.Errorf("/readyz during the outage: %d, want 503", status)
	}

	proxy.setDown(false)
	waitFor(t, "recovery after MySQL returns", 15*time.Second, func() bool {
		status, _ := fetch(s.url + "/catalog/books/")
		return status == 200
	})
	waitFor(t, "home page counts fresh again", 5*time.Second, func() bool {
		status, body := fetch(s.url+"/catalog/", cookie)
		return status == 200 && !strings.Contains(body, "may be out of date")
	})
	if status, _ := fetch(s.url + "/readyz"); status != 200 {
		t.Errorf("/readyz after recovery: %d", status)
	}
}

// seededEmbeddedDSN starts an embedded engine with a small seeded catalog
// of 30 books and returns its DSN.
func seededEmbeddedDSN(t *testing.T) string {
	t.Helper()
	dsn := emptyEmbeddedDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := migrated(t, ctx, dsn)
	defer db.Close()
	if _, err := repository.Seed(ctx, db, repository.SeedOptions{Authors: 10, Books: 30, CopiesPerBook: 2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// emptyEmbeddedDSN starts an embedded engine, stopped when the test ends,
// with an empty database: no schema yet.
func emptyEmbeddedDSN(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, stop, err := embedded.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	return dsn
}

// migrated opens dsn and applies the migrations; the caller closes it.
func migrated(t *testing.T, ctx context.Context, dsn string) *sqlx.DB {
	t.Helper()
	db, err := repository.Open(ctx, dsn, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Migrate(ctx, db.DB); err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db
}

// A replica started before the migrations ran (the Job still running, or
// forgotten) is not ready: every page would be a 500.
func TestNotReadyUntilMigrated(t *testing.T) {
	dsn := emptyEmbeddedDSN(t)
	s := startService(t, map[string]string{"LOCALLIBRARY_MYSQL_DSN": dsn})
	if status, body := fetch(s.url + "/readyz"); status != 503 {
		t.Errorf("/readyz on a database without the schema: %d %q, want 503", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	migrated(t, ctx, dsn).Close()
	if status, body := fetch(s.url + "/readyz"); status != 200 {
		t.Errorf("/readyz once migrated: %d %q, want 200", status, body)
	}
}

func TestStartsWhileMySQLIsDown(t *testing.T) {
	cfg, err := mysql.ParseDSN(seededEmbeddedDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, cfg.Addr)
	proxy.setDown(true)
	cfg.Addr = proxy.addr()
	s := startService(t, map[string]string{"LOCALLIBRARY_MYSQL_DSN": cfg.FormatDSN(), "LOCALLIBRARY_QUERY_TIMEOUT": "300ms"})
	if status, _ := fetch(s.url + "/readyz"); status != 503 {
		t.Errorf("/readyz with MySQL down at start: %d, want 503", status)
	}
	if status, _ := fetch(s.url + "/catalog/books/"); status != 503 {
		t.Errorf("book list with MySQL down at start: %d, want 503", status)
	}
	proxy.setDown(false)
	waitFor(t, "ready once MySQL answers", 15*time.Second, func() bool {
		status, _ := fetch(s.url + "/readyz")
		return status == 200
	})
	if status, _ := fetch(s.url + "/catalog/books/"); status != 200 {
		t.Errorf("book list after MySQL came up: %d", status)
	}
}

// TestEachServiceLogsToItsOwnLog: two services in one process, each given
// its own stdout, and what the MySQL driver says about each one's
// connections is in that one's log (no logger is set process-wide).
func TestEachServiceLogsToItsOwnLog(t *testing.T) {
	env := map[string]string{"LOCALLIBRARY_MYSQL_DSN": "u@tcp(" + testkit.MustHangUpAddr(t) + ")/db",
		"LOCALLIBRARY_LOG_LEVEL": "warn", "LOCALLIBRARY_QUERY_TIMEOUT": "300ms"}
	services := []*service{startService(t, env), startService(t, env)}
	driverLines := func(s *service) int { return strings.Count(s.logs.String(), `"msg":"mysql driver"`) }
	for i, s := range services {
		before := []int{driverLines(services[0]), driverLines(services[1])}
		if status, _ := fetch(s.url + "/readyz"); status != 503 { // it pings MySQL, which hangs up
			t.Fatalf("service %d: /readyz %d, want 503", i, status)
		}
		for j, other := range services {
			if grew := driverLines(other) > before[j]; grew != (i == j) {
				t.Errorf("after service %d's /readyz, service %d's log grew: %v\n%s", i, j, grew, other.logs.String())
			}
		}
	}
}

func TestHelpDoesNothingElse(t *testing.T) {
	// A configuration that would fail, and a context never cancelled: a
	// command that ran instead of printing its help would error or block.
	env := func(k string) string {
		if k == "LOCALLIBRARY_QUERY_TIMEOUT" {
			return "not a duration"
		}
		return ""
	}
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"serve", "-h"},
		{"migrate", "--help"}, {"migrate", "-h"}, {"seed", "--help"}, {"seed", "-h"},
	} {
		var out strings.Builder
		done := make(chan error, 1)
		go func() { done <- app.Run(context.Background(), args, env, &out) }()
		select {
		case err := <-done:
			if err != nil || !strings.HasPrefix(out.String(), "usage: locallibrary") {
				t.Errorf("%q: %v, printed %q", args, err, out.String())
			}
			for line := range strings.Lines(out.String()) {
				if strings.HasSuffix(strings.TrimSuffix(line, "\n"), " ") {
					t.Errorf("%q: line %q ends in a space", args, line)
				}
			}
			if args[0] == "seed" && !strings.Contains(out.String(), "-copies-per-book") {
				t.Errorf("%q lists no flags:\n%s", args, out.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q did not return: it ran the command", args)
		}
	}
	if err := app.Run(context.Background(), []string{"serve", "extra"}, env, io.Discard); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("serve extra: %v", err)
	}
}

func TestServingSharedServicesNeedsASecretKey(t *testing.T) {
	env := map[string]string{"LOCALLIBRARY_MYSQL_DSN": "root@tcp(127.0.0.1:1)/none", "LOCALLIBRARY_HTTP_ADDR": "127.0.0.1:0"}
	err := app.Run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LOCALLIBRARY_SECRET_KEY is required") {
		t.Fatalf("serve with a MySQL DSN and no secret key: %v", err)
	}
}

// TestRebuildCommand: `locallibrary rebuild` gives every book its
// book_detail row again, as after rows loaded with the triggers off.
func TestRebuildCommand(t *testing.T) {
	dsn := seededEmbeddedDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := repository.Open(ctx, dsn, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DELETE FROM book_detail`); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LOCALLIBRARY_MYSQL_DSN": dsn, "LOCALLIBRARY_LOG_LEVEL": "error"}
	if err := app.Run(ctx, []string{"rebuild"}, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	var books, details int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM book), (SELECT COUNT(*) FROM book_detail)`).Scan(&books, &details); err != nil {
		t.Fatal(err)
	}
	if books == 0 || details != books {
		t.Errorf("after rebuild: %d book_detail rows for %d books", details, books)
	}
}
