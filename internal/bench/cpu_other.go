//go:build !linux && !darwin

package bench

import "time"

// cpuTime is 0 where evstore has no portable way to read it.
func cpuTime() time.Duration { return 0 }
