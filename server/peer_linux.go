//go:build linux

package server

import (
	"net"
	"os"
	"syscall"
)

// peerChecked refuses connections from other users (root aside), in case
// the socket's mode was loosened: the socket grants what the file owner
// may do.
func peerChecked(ln net.Listener) net.Listener {
	return &peerListener{Listener: ln, uid: uint32(os.Getuid())}
}

type peerListener struct {
	net.Listener
	uid uint32
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.allowed(c) {
			return c, nil
		}
		c.Close()
	}
}

func (l *peerListener) allowed(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return cred.Uid == l.uid || cred.Uid == 0
}
