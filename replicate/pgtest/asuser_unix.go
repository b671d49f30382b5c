//go:build unix

package pgtest

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// asUser makes cmd run as an unprivileged user when the tests run as root:
// pgbouncer refuses to run as root.
func asUser(t testing.TB, cmd *exec.Cmd) {
	if os.Geteuid() != 0 {
		return
	}
	uid, gid := runAs(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}
