//go:build !darwin || ios || !cgo

package metalrt

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnavailable(t *testing.T) {
	d, err := OpenDefault()
	assert.Nil(t, d)
	assert.ErrorIs(t, err, ErrUnavailable)
	_, err = Open("Apple M2")
	assert.ErrorIs(t, err, ErrUnavailable)
	_, err = DeviceNames()
	assert.ErrorIs(t, err, ErrUnavailable)

	// Nil handles are safe to use and close.
	var nd *Device
	assert.NoError(t, nd.Close())
	_, err = nd.NewBuffer(16, Shared)
	assert.ErrorIs(t, err, ErrUnavailable)
	var b *Buffer
	assert.NoError(t, b.Close())
	assert.Zero(t, b.Len())
	var q *Queue
	assert.ErrorIs(t, q.Run(), ErrClosed)
	assert.ErrorIs(t, (&Queue{}).Run(), ErrUnavailable)
}
