//go:build !linux

package testenv

import (
	"os"
	"os/exec"
)

// setProcessGroup is a no-op where process groups are not managed the Linux way.
func setProcessGroup(*exec.Cmd) {}

// signalGroup interrupts (or kills) the child itself.
func signalGroup(cmd *exec.Cmd, kill bool) {
	if kill {
		_ = cmd.Process.Kill()
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
}

// terminate interrupts the child.
func terminate(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }
