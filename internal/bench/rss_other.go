//go:build !linux && !darwin

package bench

// resetPeakRSS does nothing where the peak cannot be read.
func resetPeakRSS() {}

// peakRSSMiB is 0 where evstore has no portable way to read the peak
// (Windows, the BSDs): the table then shows 0, meaning "not measured".
func peakRSSMiB() float64 { return 0 }
