package testkit

import (
	"time"

	"github.com/prometheus/procfs"
)

// Figures of processes and of the machine, from /proc (Linux only).

// CPUTime is the CPU (user + system) a process has used so far.
func CPUTime(pid int) (time.Duration, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return time.Duration(st.CPUTime() * float64(time.Second)), nil
}

// ChildPIDs lists the live (not zombie) children of pid.
func ChildPIDs(pid int) []int {
	all, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	var kids []int
	for _, p := range all {
		if st, err := p.Stat(); err == nil && st.PPID == pid && st.State != "Z" {
			kids = append(kids, p.PID)
		}
	}
	return kids
}
