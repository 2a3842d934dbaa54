//go:build !linux

package e2e

import "syscall"

// diesWithTest: only Linux can tie a child's life to its parent's; elsewhere a
// test binary that dies leaves its processes to be stopped by hand.
func diesWithTest() *syscall.SysProcAttr { return nil }
