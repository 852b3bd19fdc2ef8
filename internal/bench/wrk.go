package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// reqLine is one request of a load run; wrk sends the lines in turn.
type reqLine struct {
	method, path, cookie string
	body                 string // a form, URL-encoded; "" for none
}

// wrkScript sends the lines of a file (METHOD TAB PATH TAB COOKIE TAB
// BODY), each thread starting at another place, and prints wrk's summary
// as JSON. wrk keeps no cookie: a line's Cookie header is all it sends.
const wrkScript = `-- written by internal/bench (wrk.go)
local reqs, n, i, threads = {}, 0, 0, 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    local method, path, cookie, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if method then
      local headers = {}
      if cookie ~= "" then headers["Cookie"] = cookie end
      if body == "" then body = nil else headers["Content-Type"] = "application/x-www-form-urlencoded" end
      reqs[#reqs + 1] = wrk.format(method, path, headers, body)
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
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkResult is what wrk saw in one run.
type wrkResult struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"` // answers with a status of 400 or more
	Timeout    int64 `json:"timeout"`
	P50US      int64 `json:"p50_us"`
	P99US      int64 `json:"p99_us"`
}

func (w wrkResult) rps() float64 {
	if w.DurationUS <= 0 {
		return 0
	}
	return float64(w.Requests) / (float64(w.DurationUS) / 1e6)
}

// errors are the answers that were not 2xx or 3xx and the socket errors.
func (w wrkResult) errors() int64 { return w.Status + w.Connect + w.Read + w.Write + w.Timeout }

// runWrk loads addr with the lines for d on conns connections; the
// request file and wrk's output stay in the wrk folder as NAME.*.
func (b *bench) runWrk(ctx context.Context, name, addr string, lines []reqLine, conns int, d time.Duration) (wrkResult, error) {
	dir := b.wrkDir()
	script := filepath.Join(dir, "lines.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return wrkResult{}, err
	}
	var file strings.Builder
	for _, l := range lines {
		file.WriteString(l.method + "\t" + l.path + "\t" + l.cookie + "\t" + l.body + "\n")
	}
	reqFile := filepath.Join(dir, name+".requests")
	if err := os.WriteFile(reqFile, []byte(file.String()), 0o644); err != nil {
		return wrkResult{}, err
	}
	threads := min(2, conns)
	secs := max(1, int((d+time.Second/2)/time.Second))
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", strconv.Itoa(secs) + "s",
		"--timeout", "5s", "-s", script, "http://" + addr + "/", "--", reqFile, strconv.Itoa(threads)}
	// wrk stops by itself after -d; the deadline is for a wrk that hangs.
	wctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, b.bins["wrk"], args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(dir, name+".out"), out, 0o644)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

// parseWrk finds the script's summary line in wrk's output.
func parseWrk(out string) (wrkResult, error) {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCHJSON "); ok {
			var w wrkResult
			if err := json.Unmarshal([]byte(rest), &w); err != nil {
				return w, fmt.Errorf("wrk summary %q: %w", rest, err)
			}
			return w, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no summary:\n%s", out)
}
