//go:build !darwin

package main

import "errors"

// newMetalBackend: Metal exists only on macOS.
func newMetalBackend() (backend, error) {
	return nil, errors.New("not macOS")
}
