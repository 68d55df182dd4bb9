//go:build darwin && cgo

package good

/*
#cgo LDFLAGS: -framework Metal
#include <Metal/Metal.h>
static const char *device_name(void *h) { return "fixture"; }
*/
import "C"

import "unsafe"

func name(d *Device) string {
	return C.GoString(C.device_name(unsafe.Pointer(d.handle)))
}
