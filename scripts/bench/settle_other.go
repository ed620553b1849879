//go:build !unix

package main

import "time"

// settle waits between rows; without sync(2) it cannot flush the disk.
func settle() { time.Sleep(settleTime) }

// settleTime is how long settle waits.
const settleTime = 2 * time.Second
