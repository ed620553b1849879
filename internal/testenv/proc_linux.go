package testenv

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel kill a peer when the test binary that
// started it dies, even when it is killed (a -timeout panic, a SIGKILL):
// no redis-server, Dex or Pebble outlives its test on a loopback port.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
