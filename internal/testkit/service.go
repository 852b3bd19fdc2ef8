package testkit

import (
	"context"
	"time"
)

// Service is a LocalLibrary process started by StartService.
type Service struct {
	*Proc
	Addr        string // its site
	MetricsAddr string // its /metrics listener
}

// StartService runs the service binary bin as child name of ps, its site
// and its /metrics listener on free loopback ports, with env added
// (LOCALLIBRARY_ settings), and waits until /readyz answers 200. One that
// exits first, a port having been taken since it was picked, is started
// again on other ports, up to three times.
func StartService(ctx context.Context, ps *Procs, name, bin string, env []string) (*Service, error) {
	for attempt := 1; ; attempt++ {
		s := &Service{}
		var err error
		if s.Addr, err = FreeAddr(); err != nil {
			return nil, err
		}
		if s.MetricsAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
		// Listed first, so a caller's env could still move them.
		all := append([]string{"LOCALLIBRARY_HTTP_ADDR=" + s.Addr, "LOCALLIBRARY_METRICS_ADDR=" + s.MetricsAddr}, env...)
		if s.Proc, err = ps.Start(name, all, bin); err != nil {
			return nil, err
		}
		ready := "http://" + s.Addr + "/readyz"
		err = WaitFor(ctx, s.Proc, 30*time.Second, name+" ready", func() error { return GetOK(ctx, ready) })
		if err == nil {
			return s, nil
		}
		if !s.Exited() || attempt == 3 {
			return nil, err
		}
	}
}
