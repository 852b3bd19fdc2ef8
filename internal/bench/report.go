package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/locallibrary/locallibrary/internal/bench/catalogs"
)

// machine is where and with what the figures were taken.
type machine struct {
	Date      string `json:"date"`
	CPUs      int    `json:"cpus"`
	Model     string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	MySQL     string `json:"mysql"`
	Memcached string `json:"memcached"`
	Wrk       string `json:"wrk"`
	Fiber     string `json:"fiber"`
	Commit    string `json:"commit"`
}

func readMachine(ctx context.Context, b *bench) machine {
	m := machine{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), CPUs: runtime.NumCPU(), Go: runtime.Version(),
		Model: firstLine(ctx, "sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), Kernel: firstLine(ctx, "uname", "-r"),
		Commit: firstLine(ctx, "git", "-C", b.root, "rev-parse", "--short", "HEAD"),
		Fiber:  firstLine(ctx, "go", "-C", b.root, "list", "-m", "-f", "{{.Version}}", "github.com/gofiber/fiber/v2")}
	if f := strings.Fields(firstLine(ctx, b.bins["wrk"], "--version")); len(f) > 1 {
		m.Wrk = f[1]
	}
	for _, c := range b.catalogs {
		if db, err := sql.Open("mysql", c.DSN); err == nil {
			_ = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.MySQL)
			db.Close()
		}
	}
	if len(b.nodes) > 0 {
		m.Memcached = b.nodes[0].version
	}
	return m
}

// firstLine is the first line a command prints, trimmed; "" if it fails.
func firstLine(ctx context.Context, name string, args ...string) string {
	out, _ := exec.CommandContext(ctx, name, args...).Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// row is a target's line of the table: medians over the rounds, sums of
// errors and lost visits. Per-request figures are missing where not known.
type row struct {
	Target    string   `json:"target"`
	What      string   `json:"what"`
	RPS       float64  `json:"rps"`
	Ratio     float64  `json:"ratio_to_ceiling"`
	P50MS     float64  `json:"p50_ms"`
	P99MS     float64  `json:"p99_ms"`
	Errors    int64    `json:"errors"`
	Lost      *int64   `json:"lost_visits,omitempty"`
	Unchecked int      `json:"runs_unchecked,omitempty"` // runs whose visits could not be checked
	CPUUS     *float64 `json:"cpu_us_per_req,omitempty"`
	Allocs    *float64 `json:"allocs_per_req,omitempty"`
	McCPUUS   *float64 `json:"memcached_cpu_us_per_req,omitempty"`
}

type report struct {
	Machine  machine                 `json:"machine"`
	Rounds   int                     `json:"rounds"`
	Duration string                  `json:"duration"`
	Conns    int                     `json:"conns"`
	Rev      string                  `json:"rev,omitempty"`
	Catalogs map[string]*catalogs.DB `json:"catalogs"`
	Rows     []row                   `json:"rows"`
	Tabs     []tabsResult            `json:"tabs"`
	Growth   growth                  `json:"growth"`
	Notes    []string                `json:"notes"`
	Runs     []result                `json:"runs"`
}

func (b *bench) report() report {
	rep := report{Machine: b.machine, Rounds: b.o.rounds, Duration: b.o.duration.String(), Conns: b.o.conns, Rev: b.o.rev,
		Catalogs: b.catalogs, Tabs: b.tabs, Growth: b.growth, Notes: b.notes, Runs: b.runs}
	for _, t := range b.targets {
		var runs []result
		for _, r := range b.runs {
			if r.Target == t.name {
				runs = append(runs, r)
			}
		}
		rep.Rows = append(rep.Rows, summarize(t, runs))
	}
	return rep
}

func summarize(t *target, runs []result) row {
	r := row{Target: t.name, What: t.spec.what}
	var rps, ratio, p50, p99 []float64
	var cpu, allocs, mcCPU []float64
	for _, run := range runs {
		n := float64(max(1, run.Wrk.Requests))
		rps, ratio = append(rps, run.RPS), append(ratio, run.Ratio)
		p50, p99 = append(p50, float64(run.Wrk.P50US)/1000), append(p99, float64(run.Wrk.P99US)/1000)
		r.Errors += run.Wrk.errors()
		cpu = append(cpu, float64(run.CPU.Microseconds())/n)
		if run.Allocs >= 0 {
			allocs = append(allocs, run.Allocs/n)
		}
		if len(t.nodes) > 0 {
			mcCPU = append(mcCPU, float64(run.McCPU.Microseconds())/n)
		}
		switch {
		case run.Lost != nil && r.Lost == nil:
			r.Lost = new(int64)
			fallthrough
		case run.Lost != nil:
			*r.Lost += *run.Lost
		case t.set != nil:
			r.Unchecked++
		}
	}
	r.RPS, r.Ratio, r.P50MS, r.P99MS = median(rps), median(ratio), median(p50), median(p99)
	r.CPUUS, r.Allocs, r.McCPUUS = medianOf(cpu), medianOf(allocs), medianOf(mcCPU)
	return r
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// medianOf is the median, nil for none.
func medianOf(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	m := median(xs)
	return &m
}

func (rep report) writeJSON(path string) error {
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

func (rep report) markdown() string {
	var w strings.Builder
	m := rep.Machine
	fmt.Fprintf(&w, "## LocalLibrary bench, %s, commit %s", m.Date, m.Commit)
	if rep.Rev != "" {
		fmt.Fprintf(&w, " beside %s (rows marked @)", rep.Rev)
	}
	fmt.Fprintf(&w, "\n\n%d CPUs (%s), Linux %s, %s, MySQL %s, memcached %s, wrk %s. %d rounds of %s at %d connections (256 where named);"+
		" medians over the rounds, errors and lost visits summed.\n\n", m.CPUs, m.Model, m.Kernel, m.Go, m.MySQL, m.Memcached, m.Wrk,
		rep.Rounds, rep.Duration, rep.Conns)
	w.WriteString("| target | req/s | × ceiling | p50 ms | p99 ms | errors | lost visits | CPU µs/req | allocs/req | memcached CPU µs/req |\n")
	w.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&w, "| %s | %s | %s | %.2f | %.2f | %d | %s | %s | %s | %s |\n", r.Target, thousands(r.RPS), ratioText(r.Ratio),
			r.P50MS, r.P99MS, r.Errors, lostCell(r), num(r.CPUUS, 1), num(r.Allocs, 0), num(r.McCPUUS, 2))
	}
	w.WriteString("\n")
	seen := map[string]bool{}
	for _, r := range rep.Rows {
		if name, _, _ := strings.Cut(r.Target, "@"); !seen[name] {
			seen[name] = true
			fmt.Fprintf(&w, "- `%s`: %s\n", name, r.What)
		}
	}
	rep.sessionLayers(&w)
	rep.fleetRatio(&w)
	rep.Growth.markdown(&w)
	w.WriteString("\nCatalogs:")
	for _, key := range []string{"3k", "1m"} {
		if c := rep.Catalogs[key]; c != nil {
			how := "reused (its counts matched)"
			if c.Seeded > 0 {
				how = "seeded in " + c.Seeded.Round(100*time.Millisecond).String()
			}
			fmt.Fprintf(&w, " %s, %s copies, %s;", c.Name, thousands(float64(c.Size.Copies())), how)
		}
	}
	w.WriteString("\n")
	for _, n := range rep.Notes {
		fmt.Fprintf(&w, "\n- %s", n)
	}
	if len(rep.Notes) > 0 {
		w.WriteString("\n")
	}
	return w.String()
}

// sessionLayers compares the site's session layer with Fiber's on the
// same home page.
func (rep report) sessionLayers(w *strings.Builder) {
	if len(rep.Tabs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Session layers: the home page of a returning browser, notice dismissed, 3,000 copies\n\n")
	fmt.Fprintf(w, "| layer | target | req/s | × ceiling | CPU µs/page | allocs/page | memcached CPU µs/page | lost visits under load | %d tabs at once: visits, counted |\n", tabsAtOnce)
	w.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, tab := range rep.Tabs {
		name := "home-fiber-session"
		if label, ok := strings.CutPrefix(tab.Layer, "the site's session layer"); ok {
			name = "home-3k" + label
		} else {
			tab.Layer = "Fiber " + rep.Machine.Fiber + " session middleware on memcachestore"
		}
		cells := strings.Repeat(" | ", 5) // six empty cells
		if r, ok := rep.rowOf(name); ok {
			cells = fmt.Sprintf("%s | %s | %s | %s | %s | %s", thousands(r.RPS), ratioText(r.Ratio), num(r.CPUUS, 1), num(r.Allocs, 0), num(r.McCPUUS, 2), lostCell(r))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d, %d |\n", tab.Layer, name, cells, tab.Expected, tab.Stored)
	}
}

// fleetRatio sets the fleet beside the ceiling's fleet, as home-3k is set
// beside the ceiling.
func (rep report) fleetRatio(w *strings.Builder) {
	ceiling, _ := rep.rowOf("ceiling-fleet")
	for _, r := range rep.Rows {
		if name, label, _ := strings.Cut(r.Target, "@"); name == "fleet" && ceiling.RPS > 0 {
			if label != "" {
				label = "@" + label
			}
			home, _ := rep.rowOf("home-3k" + label) // a zero row without it: no ratio shown
			fmt.Fprintf(w, "\n`%s` ÷ `ceiling-fleet` (req/s, medians): %.3f; `home-3k%s` ÷ `ceiling`: %s\n", r.Target, r.RPS/ceiling.RPS, label, ratioText(home.Ratio))
		}
	}
}

// rowOf is the named target's row.
func (rep report) rowOf(target string) (row, bool) {
	for _, r := range rep.Rows {
		if r.Target == target {
			return r, true
		}
	}
	return row{}, false
}

func lostCell(r row) string {
	switch {
	case r.Lost == nil && r.Unchecked == 0:
		return ""
	case r.Lost == nil:
		return "not checked"
	}
	s := strconv.FormatInt(*r.Lost, 10)
	if *r.Lost < 0 {
		s = strconv.FormatInt(-*r.Lost, 10) + " extra"
	}
	if r.Unchecked > 0 {
		s += fmt.Sprintf(" (%d runs not checked)", r.Unchecked)
	}
	return s
}

func lostText(l *int64, prefix string) string {
	if l == nil {
		return ""
	}
	return prefix + strconv.FormatInt(*l, 10)
}

func ratioText(r float64) string {
	if r == 0 {
		return ""
	}
	return strconv.FormatFloat(r, 'f', 3, 64)
}

func num(p *float64, decimals int) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'f', decimals, 64)
}

// thousands is n rounded, with commas.
func thousands(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
