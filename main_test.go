package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run the program itself: the test binary re-run
// with LOCALLIBRARY_TEST_RUN_MAIN=1 is main.
func TestMain(m *testing.M) {
	if os.Getenv("LOCALLIBRARY_TEST_RUN_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestASecondSignalExitsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOCALLIBRARY_TEST_RUN_MAIN=1", "LOCALLIBRARY_HTTP_ADDR="+addr,
		"LOCALLIBRARY_SHUTDOWN_DRAIN=1m", "LOCALLIBRARY_LOG_LEVEL=error",
		"LOCALLIBRARY_MYSQL_DSN=", "LOCALLIBRARY_MEMCACHED_SERVERS=") // the embedded default
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			select {
			case err := <-exited:
				t.Fatalf("the program exited before %s: %v", what, err)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("not %s within 60s", what)
			}
		}
	}
	status := func(path string) int {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor("live", func() bool { return status("/livez") == 200 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitFor("draining", func() bool { return status("/readyz") == 503 }) // the first signal was taken
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Logf("exited %v after the second signal (the drain is 1m)", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after a second Ctrl-C, in a one-minute drain")
	}
}
