package testkit

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// Figures of processes and of the machine, from /proc (Linux only).

// Mem is a process's resident memory and its peak (VmHWM: since start,
// or since ResetPeak), in bytes.
func Mem(pid int) (rss, peak int64, err error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, 0, err
	}
	return int64(st.VmRSS), int64(st.VmHWM), nil
}

// ResetPeak restarts a process's VmHWM from its current RSS (Linux ≥ 4.0).
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

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

// SelfCPU is the CPU this process has used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MachineBusy is the CPU time all processors have spent in every state
// but idle and iowait (guest time is already in user); 0 when /proc/stat
// cannot be read.
func MachineBusy() time.Duration {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	st, err := fs.Stat()
	if err != nil {
		return 0
	}
	c := st.CPUTotal
	busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	return time.Duration(busy * float64(time.Second))
}

// FindProcess returns the pid of a process whose command name is comm
// (the first found), or 0.
func FindProcess(comm string) int {
	all, err := procfs.AllProcs()
	if err != nil {
		return 0
	}
	for _, p := range all {
		if c, err := p.Comm(); err == nil && c == comm {
			return p.PID
		}
	}
	return 0
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
