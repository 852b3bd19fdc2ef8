package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// reqLine is one request of a load run: a path and a browser's cookies.
type reqLine struct {
	path, cookie string
}

// loadResult is what the load generator saw in one run.
type loadResult struct {
	Requests     int64         `json:"requests"` // responses received
	Elapsed      time.Duration `json:"elapsed_ns"`
	RPS          float64       `json:"rps"`
	P50          time.Duration `json:"p50_ns"`
	P99          time.Duration `json:"p99_ns"`
	Max          time.Duration `json:"max_ns"`
	BadStatus    int64         `json:"bad_status"`    // generator-side: wrk counts ≥ 400, the Go generator anything not 2xx
	SocketErrors int64         `json:"socket_errors"` // connect, read, write errors and timeouts
	GenCPU       time.Duration `json:"generator_cpu_ns"`

	// The Go generator only: successful (2xx) responses per request line,
	// those of them whose body held the marker, and requests whose outcome
	// is unknown (the connection failed after the request was written).
	perLine   []int64
	marked    []int64
	uncertain []int64
}

// wrkScript rotates through the request lines, one per line of the file as
// PATH<TAB>COOKIE, each wrk thread starting at a different place, and
// prints the summary as JSON.
const wrkScript = `-- Written by the LocalLibrary benchmark (bench/load.go).
local reqs = {}
local n, i = 0, 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    local path, cookie = line:match("^([^\t]*)\t(.*)$")
    if path then
      local headers = {}
      if cookie ~= "" then headers["Cookie"] = cookie end
      reqs[#reqs + 1] = wrk.format("GET", path, headers)
    end
  end
  n = #reqs
  i = math.floor(n * tid / tonumber(args[2]))
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`

// wrkLoad runs wrk against addr for d with conns connections.
func wrkLoad(ctx context.Context, outDir, name, addr string, lines []reqLine, conns, threads int, d time.Duration) (loadResult, error) {
	dir := filepath.Join(outDir, "wrk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return loadResult{}, err
	}
	script := filepath.Join(dir, "rotate.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return loadResult{}, err
	}
	reqFile := filepath.Join(dir, name+".requests")
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l.path + "\t" + l.cookie + "\n")
	}
	if err := os.WriteFile(reqFile, buf.Bytes(), 0o644); err != nil {
		return loadResult{}, err
	}
	threads = max(1, min(threads, conns))
	secs := max(1, int((d+time.Second/2)/time.Second))
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", strconv.Itoa(secs) + "s",
		"--timeout", "5s", "-s", script, "http://" + addr + "/", "--", reqFile, strconv.Itoa(threads)}
	// wrk stops by itself after -d; the context bounds it in case it hangs.
	wctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, "wrk", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return loadResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	_ = os.WriteFile(filepath.Join(dir, name+".out"), out.Bytes(), 0o644)
	var js struct {
		Requests, DurationUS, Connect, Read, Write, Status, Timeout, P50US, P99US, MaxUS int64
	}
	found := false
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCHJSON "); ok {
			raw := strings.NewReplacer(`"duration_us"`, `"DurationUS"`, `"p50_us"`, `"P50US"`, `"p99_us"`, `"P99US"`, `"max_us"`, `"MaxUS"`).Replace(rest)
			if err := json.Unmarshal([]byte(raw), &js); err != nil {
				return loadResult{}, fmt.Errorf("wrk summary %q: %w", rest, err)
			}
			found = true
		}
	}
	if !found {
		return loadResult{}, fmt.Errorf("wrk printed no summary:\n%s", out.String())
	}
	r := loadResult{
		Requests:     js.Requests,
		Elapsed:      time.Duration(js.DurationUS) * time.Microsecond,
		P50:          time.Duration(js.P50US) * time.Microsecond,
		P99:          time.Duration(js.P99US) * time.Microsecond,
		Max:          time.Duration(js.MaxUS) * time.Microsecond,
		BadStatus:    js.Status,
		SocketErrors: js.Connect + js.Read + js.Write + js.Timeout,
	}
	if cmd.ProcessState != nil {
		r.GenCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if r.Elapsed > 0 {
		r.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	}
	return r, nil
}

// goLoad is the Go load generator: conns connections, each a closed loop
// (send, wait for the answer, send the next) over pre-built requests, as
// wrk does. Connection w sends lines w, w+conns, w+2·conns, …, so each
// line (each browser) is owned by one connection and its answers can be
// counted exactly. No request starts after d; those in flight finish.
//
// When marker is not empty, 2xx answers whose body contains it are counted
// per line as well.
func goLoad(ctx context.Context, addr string, lines []reqLine, conns int, d time.Duration, marker []byte) (loadResult, error) {
	if len(lines) < conns {
		return loadResult{}, fmt.Errorf("%d request lines for %d connections: want at least one each", len(lines), conns)
	}
	raws := make([][]byte, len(lines))
	for i, l := range lines {
		var b strings.Builder
		b.WriteString("GET " + l.path + " HTTP/1.1\r\nHost: " + addr + "\r\n")
		if l.cookie != "" {
			b.WriteString("Cookie: " + l.cookie + "\r\n")
		}
		b.WriteString("\r\n")
		raws[i] = []byte(b.String())
	}
	type workerOut struct {
		n, bad, sockErr int64
		lat             []uint32 // microseconds
	}
	res := loadResult{perLine: make([]int64, len(lines)), marked: make([]int64, len(lines)), uncertain: make([]int64, len(lines))}
	outs := make([]workerOut, conns)
	cpu0 := testkit.SelfCPU()
	start := time.Now()
	stopAt := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := &outs[w]
			out.lat = make([]uint32, 0, 1<<14)
			var resp fasthttp.Response
			var conn net.Conn
			var br *bufio.Reader
			closeConn := func() {
				if conn != nil {
					conn.Close()
					conn = nil
				}
			}
			defer closeConn()
			j := w
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(stopAt) {
					return
				}
				if conn == nil {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						out.sockErr++
						time.Sleep(10 * time.Millisecond)
						continue
					}
					_ = c.SetDeadline(stopAt.Add(10 * time.Second))
					conn, br = c, bufio.NewReaderSize(c, 32<<10)
				}
				if _, err := conn.Write(raws[j]); err != nil {
					out.sockErr++
					res.uncertain[j]++
					closeConn()
					continue
				}
				if err := resp.Read(br); err != nil {
					out.sockErr++
					res.uncertain[j]++
					closeConn()
					continue
				}
				out.lat = append(out.lat, uint32(time.Since(t0)/time.Microsecond))
				out.n++
				if sc := resp.StatusCode(); sc >= 200 && sc < 300 {
					res.perLine[j]++
					if len(marker) > 0 && bytes.Contains(resp.Body(), marker) {
						res.marked[j]++
					}
				} else {
					out.bad++
				}
				if resp.ConnectionClose() {
					closeConn()
				}
				if j += conns; j >= len(lines) {
					j = w
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.GenCPU = testkit.SelfCPU() - cpu0
	var all []uint32
	for _, o := range outs {
		res.Requests += o.n
		res.BadStatus += o.bad
		res.SocketErrors += o.sockErr
		all = append(all, o.lat...)
	}
	slices.Sort(all)
	if n := len(all); n > 0 {
		at := func(q float64) time.Duration {
			return time.Duration(all[min(n-1, int(q*float64(n)))]) * time.Microsecond
		}
		res.P50, res.P99, res.Max = at(0.50), at(0.99), time.Duration(all[n-1])*time.Microsecond
	}
	res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	return res, ctx.Err()
}
