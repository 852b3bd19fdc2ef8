package testkit

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseMetricsFlattensHistograms(t *testing.T) {
	text := `# HELP req Requests.
# TYPE req histogram
req_bucket{route="/a",le="0.1"} 3
req_bucket{route="/a",le="+Inf"} 5
req_sum{route="/a"} 0.7
req_count{route="/a"} 5
# TYPE up gauge
up 1
# TYPE errs counter
errs_total{op="get"} 2
errs_total{op="set"} 4
`
	m, err := ParseMetrics([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("req_count", nil); got != 5 {
		t.Errorf("req_count = %v, want 5", got)
	}
	if got := m.Sum("req_bucket", func(l map[string]string) bool { return l["le"] == "+Inf" }); got != 5 {
		t.Errorf("+Inf bucket = %v, want 5", got)
	}
	if got := m.Sum("errs_total", func(l map[string]string) bool { return l["op"] == "set" }); got != 4 {
		t.Errorf("errs_total{op=set} = %v, want 4", got)
	}
	if _, err := ParseMetrics([]byte("up{ 1\n")); err == nil {
		t.Error("a broken line parsed without an error")
	}
}

func TestJarKeepsAndDeletes(t *testing.T) {
	var j Jar
	if _, changed := j.Keep("sessionid=abc; Path=/; Max-Age=3600; HttpOnly"); !changed {
		t.Error("a new cookie did not change the jar")
	}
	j.Keep("test=1; Path=/catalog/")
	if _, changed := j.Keep("sessionid=abc; Path=/; Max-Age=3600"); changed {
		t.Error("the same cookie again changed the jar")
	}
	if got := j.Header("/catalog/", false); got != "sessionid=abc; test=1" {
		t.Errorf("Header = %q", got)
	}
	if got := j.Header("/", false); got != "sessionid=abc" {
		t.Errorf("Header(/) = %q: the /catalog/ cookie leaked", got)
	}
	if got := j.Header("/catalog/", true); got != "sessionid=abc" {
		t.Errorf("persistent Header = %q", got)
	}
	j.Keep("sessionid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
	if j.Value("sessionid") != "" {
		t.Error("an expired cookie was kept")
	}
}

func TestFormValues(t *testing.T) {
	body := `<form method="post" action="/other"><input name="x" value="1"></form>
<form method="post" action="/catalog/notice/dismiss">
  <input type="hidden" name="csrfmiddlewaretoken" value="t&amp;k">
  <button type="submit">Got it</button>
</form>`
	v, err := FormValues(body, "/catalog/notice/dismiss")
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("csrfmiddlewaretoken") != "t&k" || v.Has("x") {
		t.Errorf("form values %v", v)
	}
	if _, err := FormValues(body, "/missing"); err == nil {
		t.Error("a missing form gave no error")
	}
}

func TestProcsStopAndKill(t *testing.T) {
	ps, err := NewProcs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	polite, err := ps.Start("polite", nil, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	// A shell that ignores SIGTERM must be killed after the grace.
	stubborn, err := ps.Start("stubborn", nil, "sh", "-c", `trap "" TERM; echo ready; sleep 30 & wait`)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(context.Background(), stubborn, 5*time.Second, "trap set", func() error {
		if Tail(stubborn.Log, 1) != "ready" {
			return os.ErrNotExist
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ps.Running()) != 2 {
		t.Fatalf("running %d, want 2", len(ps.Running()))
	}
	if err := polite.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	err = ps.StopAll(300 * time.Millisecond)
	if err == nil {
		t.Error("StopAll reported no child killed")
	}
	if !polite.Exited() || !stubborn.Exited() || len(ps.Running()) != 0 {
		t.Error("a child outlived StopAll")
	}
}

func TestStartMemcached(t *testing.T) {
	if _, err := MemcachedBin(); err != nil {
		Unavailable(t, "%v", err)
	}
	ps, err := NewProcs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ps.StopAll(time.Second)
	mc, err := StartMemcached(context.Background(), ps, "memcached", "", 16)
	if err != nil {
		t.Fatal(err)
	}
	st, err := MemcachedStats(mc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if StatInt(st, "pid") != int64(mc.Proc.PID()) {
		t.Errorf("stats pid %s, want %d", st["pid"], mc.Proc.PID())
	}
	if _, err := CPUTime(mc.Proc.PID()); err != nil {
		t.Error(err)
	}
}
