//go:build !race

package cpuflash

const raceEnabled = false
