//go:build linux

package bench

import (
	"os"
	"strconv"
	"strings"
)

// resetPeakRSS makes the kernel's peak-RSS counter start again from the
// current RSS (Linux 4.0+), so the next reading is one workload's peak, not
// the process's.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMiB reads VmHWM, which resetPeakRSS can reset; ru_maxrss cannot be.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					return kb / 1024
				}
			}
		}
	}
	return 0
}
