//go:build darwin && cgo

package bad

// #include <Metal/Metal.h>
import "C"

func count() int {
	var n int = "three"
	return n + int(C.MTLCount()) + notDeclared
}
