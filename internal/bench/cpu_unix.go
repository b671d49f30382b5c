//go:build linux || darwin

package bench

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used so far,
// 0 where it cannot be read. On a shared machine a workload's CPU time per
// event moves less than its wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
