//go:build unix

package main

import (
	"syscall"
	"time"
)

// settle lets the disk write back what earlier rows left dirty before a
// row (or a calibration row) is measured, so one row's writeback is not
// charged to the next. The audited-always row, whose fsync per request
// slows the disk for longer than this, runs last in the default table.
// The harness is Linux-only (it reads /proc), like the rows it measures.
func settle() {
	syscall.Sync()
	time.Sleep(settleTime)
}

// settleTime is how long settle waits after sync(2).
const settleTime = 2 * time.Second
