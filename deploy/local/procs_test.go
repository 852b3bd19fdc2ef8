package local

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// newProcs starts the proof's child processes (see testkit.Procs) and
// ends exactly those: at the end of the test (t.Cleanup, also when it
// fails, showing each one's last log lines then), and when the test binary
// is interrupted, which skips t.Cleanup.
func newProcs(t *testing.T, dir string, guard *testkit.Guard) *testkit.Procs {
	t.Helper()
	ps, err := testkit.NewProcs(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	guard.Add(ps.KillAll)
	t.Cleanup(func() {
		list := ps.List()
		_ = ps.StopAll(5 * time.Second)
		if t.Failed() {
			for _, p := range list {
				t.Logf("--- last lines of %s (%s):\n%s", p.Name, p.Log, testkit.Tail(p.Log, 15))
			}
		}
	})
	return ps
}

// tools are the programs the proof runs, besides the service it builds.
type tools struct{ nginx string }

func findTools(t *testing.T) tools {
	t.Helper()
	nginx, err := testkit.FindBin("nginx", "nginx", "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin")
	if err != nil {
		testkit.Unavailable(t, "%v", err)
	}
	if _, err := testkit.MemcachedBin(); err != nil {
		testkit.Unavailable(t, "%v", err)
	}
	return tools{nginx: nginx}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
