//go:build cgo && linux

package mslemu

/*
#cgo CPPFLAGS: -I. -I../..
#cgo CXXFLAGS: -std=c++14 -pedantic-errors -O2 -fstack-clash-protection -Wno-attributes -Ishim
#cgo LDFLAGS: -pthread -lstdc++ -lm
#cgo mslemu_tsan CXXFLAGS: -fsanitize=thread -g -O1
#cgo mslemu_tsan LDFLAGS: -fsanitize=thread
#include <stdlib.h>
#include "shim/mslemu_rt.h"
*/
import "C"

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

var (
	// launchMu serialises launches in Go (the runtime has its own lock too), so that
	// waiting callers block here rather than in C.
	launchMu sync.Mutex

	tableOnce sync.Once
	byName    map[string]int
	names     []string
	staleErr  error
)

func loadTable() {
	n := int(C.mslemu_kernel_count())
	byName = make(map[string]int, n)
	for i := 0; i < n; i++ {
		name := C.GoString(C.mslemu_kernel_at(C.int(i)).name)
		byName[name] = i
		names = append(names, name)
	}
	sort.Strings(names)
	staleErr = checkSources(C.GoString(C.mslemu_source_list()))
}

// checkSources compares the .metal files the adapters were generated from with the
// embedded ones: a file added or removed since the last go generate makes the table
// stale.
func checkSources(generated string) error {
	want := map[string]bool{}
	for _, line := range strings.Split(generated, "\n") {
		if line != "" {
			want[line] = true
		}
	}
	have := map[string]bool{}
	add := func(prefix string, fsys fs.FS) error {
		names, err := fs.Glob(fsys, "*.metal")
		if err != nil {
			return err
		}
		for _, n := range names {
			have[path.Join(prefix, n)] = true
		}
		return nil
	}
	if test, err := fs.Sub(embedded, "testkernels"); err == nil {
		if err := add("tools/mslemu/testkernels", test); err != nil {
			return err
		}
	}
	if nativeSources != nil {
		if err := add("native/msl", nativeSources); err != nil {
			return err
		}
	}
	var diff []string
	for f := range have {
		if !want[f] {
			diff = append(diff, "new "+f)
		}
	}
	for f := range want {
		if !have[f] && (nativeSources != nil || !strings.HasPrefix(f, "native/msl/")) {
			diff = append(diff, "removed "+f)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		return fmt.Errorf("%w (%s)", ErrStale, strings.Join(diff, ", "))
	}
	return nil
}

// LaneLayout returns where lane (0..31) sits in an 8x8 SIMD-group matrix under the
// emulator: it holds elements (row, col) and (row, col+1), which thread_elements()[0] and
// [1] name. This is MLX's BaseMMAFrag layout (see docs/EMULATION.md); a probe kernel run on
// a GPU is compared with it.
func LaneLayout(lane int) (row, col int, err error) {
	if lane < 0 || lane >= 32 {
		return 0, 0, fmt.Errorf("mslemu: lane %d out of 0..31", lane)
	}
	var r, c C.int
	C.mslemu_lane_layout(C.int(lane), &r, &c)
	return int(r), int(c), nil
}

// Kernels returns the [[host_name]] of every kernel compiled into the emulator, sorted.
func Kernels() []string {
	tableOnce.Do(loadTable)
	return append([]string(nil), names...)
}

// Available reports whether kernels can be launched.
func Available() bool { return true }

// LaunchWith is Launch with options.
func LaunchWith(kernel string, groups, threadsPerGroup [3]int, buffers []Buffer, o Options) error {
	tableOnce.Do(loadTable)
	if staleErr != nil {
		return staleErr
	}
	k, ok := byName[kernel]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKernel, kernel)
	}
	var g, t [3]C.uint32_t
	for i := 0; i < 3; i++ {
		if groups[i] < 0 || groups[i] > 1<<31 || threadsPerGroup[i] < 1 || threadsPerGroup[i] > C.MSLEMU_MAX_THREADS {
			return fmt.Errorf("mslemu: %s: bad dispatch: %v threadgroups of %v threads", kernel, groups, threadsPerGroup)
		}
		g[i] = C.uint32_t(groups[i])
		t[i] = C.uint32_t(threadsPerGroup[i])
	}
	if len(buffers) > 64 {
		return fmt.Errorf("mslemu: %s: %d buffers (at most 64)", kernel, len(buffers))
	}
	if len(o.Constants) > C.MSLEMU_MAX_CONSTANTS {
		return fmt.Errorf("mslemu: %s: %d function constants (at most %d)", kernel, len(o.Constants), C.MSLEMU_MAX_CONSTANTS)
	}
	// In C memory's layout but Go memory: the array holds no pointers.
	var consts [C.MSLEMU_MAX_CONSTANTS]C.mslemu_const
	seen := map[int]bool{}
	for i, c := range o.Constants {
		kind, size, b, ok := constBytes(c.Value)
		if !ok {
			return fmt.Errorf("mslemu: %s: function constant %d: value of Go type %T (want bool, a sized integer, float32 or Half)", kernel, c.Index, c.Value)
		}
		if c.Index < 0 || c.Index > 65535 || seen[c.Index] {
			return fmt.Errorf("mslemu: %s: function constant index %d out of 0..65535 or given twice", kernel, c.Index)
		}
		seen[c.Index] = true
		consts[i].index = C.int32_t(c.Index)
		consts[i].kind = C.char(kind)
		consts[i].size = C.uint8_t(size)
		for j := 0; j < 8; j++ {
			consts[i].bytes[j] = C.uint8_t(b[j])
		}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	opts := C.mslemu_options{
		order:           C.int(o.Order),
		seed:            C.uint64_t(o.Seed),
		timeout_seconds: C.double(timeout.Seconds()),
	}

	launchMu.Lock()
	defer launchMu.Unlock()

	// Copy each buffer into C memory that ends at an inaccessible page, so that the
	// kernel never holds a Go pointer and an access past a buffer's end is caught.
	// (An array of C pointers in Go memory: no Go pointer reaches C, and nothing is
	// malloc'ed here and freed on another thread.)
	var cbufs [64]C.mslemu_buffer
	defer func() {
		for i := range buffers {
			C.mslemu_buffer_free(cbufs[i].data, cbufs[i].size)
		}
	}()
	for i, b := range buffers {
		if b.Data == nil {
			continue
		}
		p := C.mslemu_buffer_alloc(C.size_t(len(b.Data)))
		if p == nil {
			return fmt.Errorf("mslemu: %s: out of memory for buffer %d (%d bytes)", kernel, i, len(b.Data))
		}
		cbufs[i].data = p
		cbufs[i].size = C.size_t(len(b.Data))
		copy(unsafe.Slice((*byte)(p), len(b.Data)), b.Data)
	}

	var cerr *C.char // owned by the runtime; valid until the next launch (launchMu is held)
	rc := C.mslemu_launch(C.int(k), &g[0], &t[0], &cbufs[0], C.int(len(buffers)), &consts[0], C.int(len(o.Constants)), &opts, &cerr)

	writes := uint64(C.mslemu_kernel_at(C.int(k)).writes)
	for i, b := range buffers {
		if b.Data != nil && writes>>uint(i)&1 == 1 {
			copy(b.Data, unsafe.Slice((*byte)(cbufs[i].data), len(b.Data)))
		}
	}
	if rc != 0 {
		msg := C.GoString(cerr)
		return &KernelError{Kernel: kernel, Msg: msg}
	}
	return nil
}
