//go:build !windows

package server

import "os"

// restrictSocket makes the socket reachable by its owner's user only:
// connecting needs write permission on the socket file.
func restrictSocket(path string) error { return os.Chmod(path, 0o600) }
