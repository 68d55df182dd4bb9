//go:build !darwin || !cgo

package bad

func count() int { return 0 }
