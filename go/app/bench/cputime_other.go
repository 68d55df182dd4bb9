//go:build !unix

package main

import "time"

// cpuTime is unknown here; the GFLOP/cpu-s columns print "-".
func cpuTime() time.Duration { return 0 }
