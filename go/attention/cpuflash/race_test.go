//go:build race

package cpuflash

// raceEnabled: the race detector slows these loops 5–10×, so the random suites draw
// shorter sequences (the same number of problems and options).
const raceEnabled = true
