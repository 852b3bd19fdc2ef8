package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// The fleet target measures what MySQL spends on the home page as the
// number of replicas grows: the same total traffic, at a fixed rate well
// below what one replica serves, is sent to 1 and then to 6 replicas of
// the 1,000,000-copy catalog, in turn, each round. MariaDB's CPU is read
// from /proc (the whole server, other clients included) and from its
// per-user statistics (the services' account alone).

// fleetReplicas is the larger fleet; fleetRate the total requests a second.
const (
	fleetReplicas = 6
	fleetRate     = 1000
)

// fleetRun is one measured interval of the fleet target.
type fleetRun struct {
	Round      int           `json:"round"`
	Replicas   int           `json:"replicas"`
	Requests   int64         `json:"requests"`
	Errors     int64         `json:"errors"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	MariaDBCPU time.Duration `json:"mariadb_cpu_ns"`       // the server process
	UserCPU    float64       `json:"mariadb_user_cpu_s"`   // the services' account (userstat)
	Queries    int64         `json:"mariadb_user_queries"` // the services' account
}

// startFleet starts the fleet's replicas.
func (h *harness) startFleet(ctx context.Context) error {
	for i := 1; i <= fleetReplicas; i++ {
		if err := h.startService(ctx, fmt.Sprintf("fleet%d", i), h.o.largeDB, nil); err != nil {
			return err
		}
	}
	return nil
}

// measureFleet runs the fleet target: per round, 1 replica then all.
func (h *harness) measureFleet(ctx context.Context, bs []browser) error {
	for round := 1; round <= h.o.rounds; round++ {
		for _, n := range []int{1, fleetReplicas} {
			h.waitQuiet(ctx)
			r, err := h.fleetRun(ctx, bs, n)
			if err != nil {
				return fmt.Errorf("fleet, %d replicas: %w", n, err)
			}
			r.Round = round
			h.fleet = append(h.fleet, r)
			h.logf("round %d/%d fleet of %d: %d requests (%d errors) in %v; MariaDB CPU %v (services' account %.3f s, %d queries)",
				round, h.o.rounds, n, r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond),
				r.MariaDBCPU.Round(time.Millisecond), r.UserCPU, r.Queries)
		}
	}
	return nil
}

// fleetRun sends fleetRate home pages a second, spread over n replicas,
// for the run's duration, and reads MariaDB's CPU around it.
func (h *harness) fleetRun(ctx context.Context, bs []browser, n int) (fleetRun, error) {
	r := fleetRun{Replicas: n}
	var bases []string
	for i := 1; i <= n; i++ {
		bases = append(bases, h.services[fmt.Sprintf("fleet%d", i)].base())
	}
	client := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	cpu0, _ := testkit.CPUTime(h.mariadbPID)
	user0, q0, _ := h.mdb.userCPU(ctx)
	start := time.Now()
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / fleetRate)
	defer tick.Stop()
	for i := 0; time.Since(start) < h.o.duration; i++ {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", bases[i%n]+"/catalog/", nil)
			req.Header.Set("Cookie", bs[i%len(bs)].cookie)
			resp, err := client.Do(req)
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	cpu1, _ := testkit.CPUTime(h.mariadbPID)
	user1, q1, _ := h.mdb.userCPU(ctx)
	r.Requests, r.Errors = sent.Load(), failed.Load()
	r.MariaDBCPU, r.UserCPU, r.Queries = cpu1-cpu0, user1-user0, q1-q0
	return r, nil
}

// userCPU is the CPU time and queries MariaDB counted for the services'
// account (0 without per-user statistics).
func (m *mariadb) userCPU(ctx context.Context) (seconds float64, queries int64, err error) {
	if !m.userStats {
		return 0, 0, nil
	}
	err = m.admin.QueryRowContext(ctx, `SELECT COALESCE(SUM(CPU_TIME), 0), COALESCE(SUM(SELECT_COMMANDS + UPDATE_COMMANDS), 0)
FROM information_schema.USER_STATISTICS WHERE USER = ?`, benchUser).Scan(&seconds, &queries)
	return seconds, queries, err
}

// fleetReport is the fleet section of the report.
func (h *harness) fleetReport() string {
	if len(h.fleet) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### Fleet: MariaDB's work with 1 and %d replicas\n\n", fleetReplicas)
	fmt.Fprintf(&b, "The same %d home pages a second (1,000,000 copies), sent to 1 replica, then spread over %d, for %v each, in every round.\n\n",
		fleetRate, fleetReplicas, h.o.duration)
	b.WriteString("| round | replicas | requests | errors | MariaDB CPU (process) | services' account CPU (userstat) | services' queries |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	sum := map[int][2]float64{}
	for _, r := range h.fleet {
		fmt.Fprintf(&b, "| %d | %d | %s | %d | %.3f s | %.3f s | %d |\n", r.Round, r.Replicas, thousands(r.Requests), r.Errors,
			r.MariaDBCPU.Seconds(), r.UserCPU, r.Queries)
		s := sum[r.Replicas]
		sum[r.Replicas] = [2]float64{s[0] + r.MariaDBCPU.Seconds(), s[1] + r.UserCPU}
	}
	one, many := sum[1], sum[fleetReplicas]
	if one[0] > 0 {
		fmt.Fprintf(&b, "\nMariaDB CPU with %d replicas over 1, summed over the rounds: %.2f× (process), ", fleetReplicas, many[0]/one[0])
		if one[1] > 0 {
			fmt.Fprintf(&b, "%.2f× (services' account). ", many[1]/one[1])
		}
		fmt.Fprintf(&b, "Goal: at most 1.5×: %s.\n\n", mark(many[0]/one[0] <= 1.5 || one[1] > 0 && many[1]/one[1] <= 1.5))
	}
	return b.String()
}
