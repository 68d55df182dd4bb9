//go:build !darwin || !cgo

package good

func name(*Device) string { return "unavailable" }
