//go:build !unix

package pgtest

import (
	"os/exec"
	"testing"
)

func asUser(testing.TB, *exec.Cmd) {}
