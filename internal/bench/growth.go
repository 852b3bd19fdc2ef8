package main

import (
	"fmt"
	"strings"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// growth follows each service process's memory and goroutines from the
// end of the first round, when its caches and pools have filled, to the
// end: a bench of many rounds is a soak, and this is where a leak shows.
type growth []*procGrowth

type procGrowth struct {
	Process         string  `json:"process"`
	Readings        int     `json:"readings"`
	FirstRSS        float64 `json:"first_rss_bytes"` // the last reading of round 1
	LastRSS         float64 `json:"last_rss_bytes"`
	PeakRSS         float64 `json:"peak_rss_bytes"` // the most read
	FirstGoroutines float64 `json:"first_goroutines"`
	LastGoroutines  float64 `json:"last_goroutines"`
	MostGoroutines  float64 `json:"most_goroutines"`
	settled         bool    // round 1 is over: First* stay
}

// read takes a reading of process from its /metrics.
func (g *growth) read(process string, m testkit.Metrics) {
	rss, gs := m.Sum("process_resident_memory_bytes", nil), m.Sum("go_goroutines", nil)
	var p *procGrowth
	for _, q := range *g {
		if q.Process == process {
			p = q
		}
	}
	if p == nil {
		p = &procGrowth{Process: process}
		*g = append(*g, p)
	}
	if !p.settled {
		p.FirstRSS, p.FirstGoroutines = rss, gs
	}
	p.Readings++
	p.LastRSS, p.PeakRSS = rss, max(p.PeakRSS, rss)
	p.LastGoroutines, p.MostGoroutines = gs, max(p.MostGoroutines, gs)
}

// settle ends round 1: the readings so far were the processes filling up.
func (g growth) settle() {
	for _, p := range g {
		p.settled = true
	}
}

func (g growth) markdown(w *strings.Builder) {
	if len(g) == 0 {
		return
	}
	w.WriteString("\n### Service processes: the end of round 1 → the end (read before and after every run)\n\n")
	w.WriteString("| process | readings | RSS MiB | RSS growth | most RSS MiB | goroutines | most goroutines |\n|---|---:|---:|---:|---:|---:|---:|\n")
	const mib = 1 << 20
	for _, p := range g {
		fmt.Fprintf(w, "| %s | %d | %.1f → %.1f | %+.1f %% | %.1f | %.0f → %.0f | %.0f |\n", p.Process, p.Readings,
			p.FirstRSS/mib, p.LastRSS/mib, 100*(p.LastRSS-p.FirstRSS)/max(p.FirstRSS, 1), p.PeakRSS/mib,
			p.FirstGoroutines, p.LastGoroutines, p.MostGoroutines)
	}
}
