//go:build cgo && linux

// The emulator's lane layout of 8x8 SIMD-group matrices, for Go (mslemu.LaneLayout): the
// same function the shim's simdgroup_load, simdgroup_store and thread_elements use.
#include "shim/mslemu_simd.h"

extern "C" void mslemu_lane_layout(int lane, int* row, int* col) { mslemu::mat_coord(lane, *row, *col); }
