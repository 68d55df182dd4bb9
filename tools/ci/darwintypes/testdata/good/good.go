// Package good is a fixture: its darwin cgo file is correct Go.
package good

// Device is what the darwin file hands out.
type Device struct{ handle uintptr }

// Name is implemented per system.
func (d *Device) Name() string { return name(d) }
