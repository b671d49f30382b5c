package cli

import "time"

// waitABit paces a loop that polls for a condition with a deadline guard
// of its own.
func waitABit() { time.Sleep(5 * time.Millisecond) }
