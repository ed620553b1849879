package idp

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the IdP when the process that
// started it dies, even by SIGKILL: a demo or test that is killed leaves
// no IdP behind on its port.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
