//go:build !unix

package local

import (
	"os"
	"time"
)

// lockingOpener is nil where bbolt's own lock wait is used as is.
func lockingOpener(time.Duration, func()) func(string, int, os.FileMode) (*os.File, error) {
	return nil
}
