//go:build race

package mslemu_test

// raceEnabled: the tests run under -race, which instruments only Go code.
const raceEnabled = true
