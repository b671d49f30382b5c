//go:build windows

package server

// restrictSocket does nothing on Windows: there the socket file inherits
// the directory's ACL, which is what protects the database beside it too.
func restrictSocket(string) error { return nil }
