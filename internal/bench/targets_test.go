package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/bench/catalogs"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestOptions(t *testing.T) {
	dsn := "u:p@tcp(127.0.0.1:3306)/x"
	o, err := parseOptions(nil, env(map[string]string{dsnEnv: dsn}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.mysqlDSN != dsn || strings.Join(o.targets, ",") != strings.Join(targetNames(), ",") || o.rounds != 3 || o.conns != 64 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseOptions([]string{"-mysql", "a@tcp(127.0.0.1:1)/", "-targets", "home-3k, ceiling", "-memcached", "127.0.0.1:1,127.0.0.1:2"}, env(nil), io.Discard)
	if err != nil || o.mysqlDSN != "a@tcp(127.0.0.1:1)/" || strings.Join(o.targets, ",") != "home-3k,ceiling" || len(o.memcached) != 2 {
		t.Errorf("flags: %+v, %v", o, err)
	}
	// Every problem at once, each naming its flag.
	_, err = parseOptions([]string{"-targets", "b,ceiling,ceiling", "-duration", "10ms", "-memcached", "nohost", "-rounds", "0"}, env(nil), io.Discard)
	for _, want := range []string{"-mysql", dsnEnv, "unknown target \"b\"", "-duration", "-memcached", "-rounds"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if _, err := parseTargets("ceiling,ceiling"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a target twice: %v", err)
	}
}

func TestTargetTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range targetSpecs {
		if seen[s.name] || strings.Contains(s.name, "@") {
			t.Errorf("target %q twice, or with the build label's @", s.name)
		}
		seen[s.name] = true
		if !strings.Contains(string(readme), "`"+s.name+"`") {
			t.Errorf("README.md does not describe target %s", s.name)
		}
		if _, ok := catalogs.Sizes[s.catalog]; ok != (s.kind != ceilingKind && s.kind != ceilingFleetKind) {
			t.Errorf("%s: catalog %q", s.name, s.catalog)
		}
		if (s.kind == pageKind) != (s.paths != nil) || (s.kind == formKind) != (s.action != "") {
			t.Errorf("%s: pages or form action missing or out of place", s.name)
		}
		if s.notice && s.kind != homeKind {
			t.Errorf("%s: notice browsers on a target that is no home page", s.name)
		}
	}
}

func TestPagesSpread(t *testing.T) {
	z := catalogs.Size{Authors: 5, Books: 95, CopiesPerBook: 1}
	if got := strings.Join(listPages("/catalog/books/", books)(z), " "); got != "/catalog/books/?page=1 "+
		"/catalog/books/?page=2 /catalog/books/?page=3 /catalog/books/?page=4 /catalog/books/?page=5 "+
		"/catalog/books/?page=6 /catalog/books/?page=7 /catalog/books/?page=8 /catalog/books/?page=9 /catalog/books/?page=10" {
		t.Errorf("list pages %q", got)
	}
	big := records("/catalog/book/", books)(catalogs.Size{Books: 100_000})
	if len(big) != distinctRecords || big[0] != "/catalog/book/1" || big[1] != "/catalog/book/51" || big[len(big)-1] != "/catalog/book/99951" {
		t.Errorf("records: %d, %s … %s", len(big), big[0], big[len(big)-1])
	}
	lines := spread([]string{"/a", "/b", "/c"}, []string{"x", "y"})
	if len(lines) != 3 || lines[2].path != "/c" || lines[2].cookie != "x" || lines[1].cookie != "y" {
		t.Errorf("spread: %+v", lines)
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 2s test\n  2 threads and 64 connections\nBENCHJSON {\"requests\":2000,\"duration_us\":2000000,\"connect\":1,\"read\":2,\"write\":0,\"status\":3,\"timeout\":4,\"p50_us\":900,\"p99_us\":5000}\n"
	w, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if w.rps() != 1000 || w.errors() != 10 || w.P99US != 5000 {
		t.Errorf("parsed %+v: %v req/s, %d errors", w, w.rps(), w.errors())
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("no summary, no error")
	}
}

func TestCountedPages(t *testing.T) {
	m, err := testkit.ParseMetrics([]byte(`locallibrary_http_request_duration_seconds_count{route="/catalog/",method="GET",status="200"} 100
locallibrary_http_request_duration_seconds_count{route="/catalog/",method="GET",status="302"} 7
locallibrary_http_request_duration_seconds_count{route="/catalog/books/",method="GET",status="200"} 9
locallibrary_visit_count_unavailable_total 3
fibersession_home_pages_total{visit="counted"} 20
fibersession_home_pages_total{visit="unavailable"} 2
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := countedPages(m); got != 117 {
		t.Errorf("counted pages %v, want 100 - 3 + 20", got)
	}
}

func TestReport(t *testing.T) {
	lost := func(n int64) *int64 { return &n }
	home := &target{spec: targetSpec{name: "home-3k", what: "home page", kind: homeKind}, name: "home-3k", set: &browserSet{}, nodes: []*mcNode{{}}}
	ceil := &target{spec: targetSpec{name: "ceiling", what: "13 bytes"}, name: "ceiling"}
	runs := []result{
		{Target: "ceiling", Round: 1, RPS: 40000, Wrk: wrkResult{Requests: 400000}, Allocs: -1},
		{Target: "home-3k", Round: 1, RPS: 10000, Ratio: 0.25, Wrk: wrkResult{Requests: 100000, P99US: 9000, Status: 2},
			CPU: 5 * time.Second, Allocs: 8_000_000, McCPU: time.Second, Lost: lost(0)},
		{Target: "home-3k", Round: 2, RPS: 14000, Ratio: 0.35, Wrk: wrkResult{Requests: 140000, P99US: 7000},
			CPU: 7 * time.Second, Allocs: 11_200_000, McCPU: 2 * time.Second, Lost: lost(-2)},
		{Target: "home-3k", Round: 3, RPS: 12000, Ratio: 0.30, Wrk: wrkResult{Requests: 120000, P99US: 8000}, Allocs: 9_600_000},
	}
	var g growth
	for i, text := range []string{"process_resident_memory_bytes 3.145728e+07\ngo_goroutines 20\n",
		"process_resident_memory_bytes 4.194304e+07\ngo_goroutines 90\n", "process_resident_memory_bytes 3.3554432e+07\ngo_goroutines 21\n"} {
		m, err := testkit.ParseMetrics([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		g.read("service-3k", m)
		if i == 0 {
			g.settle() // round 1 ends
		}
	}
	b := &bench{targets: []*target{ceil, home}, runs: runs, o: options{rounds: 3, duration: 10 * time.Second, conns: 64},
		tabs: []tabsResult{{Layer: "the site's session layer", Browsers: 50, Tabs: 8, Expected: 450, Stored: 450},
			{Layer: "Fiber's session middleware", Browsers: 50, Tabs: 8, Expected: 450, Stored: 120}}, growth: g}
	rep := b.report()
	r := rep.Rows[1]
	if r.RPS != 12000 || r.Ratio != 0.30 || r.P99MS != 8 || r.Errors != 2 || *r.Lost != -2 || r.Unchecked != 1 || *r.Allocs != 80 || *r.McCPUUS != 10 {
		t.Errorf("home row %+v", r)
	}
	md := rep.markdown()
	for _, want := range []string{
		"| home-3k | 12,000 | 0.300 | 0.00 | 8.00 | 2 | 2 extra (1 runs not checked) | 50.0 | 80 | 10.00 |",
		"| ceiling | 40,000 |  | 0.00 | 0.00 | 0 |  | 0.0 |  |  |",
		"- `home-3k`: home page",
		"| the site's session layer | home-3k | 12,000 | 0.300 | 50.0 | 80 | 10.00 | 2 extra (1 runs not checked) | 450, 450 |",
		"| service-3k | 3 | 30.0 → 32.0 | +6.7 % | 40.0 | 20 → 21 | 90 |",
		"| home-fiber-session |  |  |  |  |  |  | 450, 120 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

func TestFleetRatio(t *testing.T) {
	rep := report{Rows: []row{{Target: "home-3k", Ratio: 0.3}, {Target: "ceiling-fleet", RPS: 50000}, {Target: "fleet", RPS: 20000}, {Target: "fleet@abc", RPS: 10000}}}
	var w strings.Builder
	rep.fleetRatio(&w)
	for _, want := range []string{"`fleet` ÷ `ceiling-fleet` (req/s, medians): 0.400; `home-3k` ÷ `ceiling`: 0.300", "`fleet@abc` ÷ `ceiling-fleet` (req/s, medians): 0.200; `home-3k@abc` ÷ `ceiling`: \n"} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("fleet lines %q lack %q", w.String(), want)
		}
	}
}
