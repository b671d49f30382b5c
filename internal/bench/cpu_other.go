//go:build !unix

package bench

import "time"

// processCPU is 0 where it is not measured; the CPU figures are then left
// out.
func processCPU() time.Duration { return 0 }
