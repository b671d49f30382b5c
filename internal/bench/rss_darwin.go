//go:build darwin

package bench

import "syscall"

// resetPeakRSS does nothing: macOS cannot reset the peak, so each reading is
// the process's peak so far, not one workload's.
func resetPeakRSS() {}

// peakRSSMiB reads ru_maxrss, which macOS reports in bytes (Linux in KiB).
func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / (1 << 20)
}
