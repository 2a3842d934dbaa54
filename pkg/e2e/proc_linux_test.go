package e2e

import "syscall"

// diesWithTest makes a child process get SIGKILL when the test binary dies (a
// timeout, a panic, ^C), so no natter or nats-server process outlives its test.
func diesWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
