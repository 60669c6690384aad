package testenv

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the child in its own process group, so stopping it reaches anything it
// started, and has the kernel kill it if the test binary dies first (a -timeout panic skips
// t.Cleanup) instead of leaving it running on a shared machine.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends SIGTERM (or SIGKILL) to the child's process group.
func signalGroup(cmd *exec.Cmd, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

// terminate sends SIGTERM to the child alone.
func terminate(cmd *exec.Cmd) error { return cmd.Process.Signal(syscall.SIGTERM) }
