package mslemu_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/tools/mslemu"
)

// siteOf returns "testkernels/broken.metal:N" for the line holding marker.
func siteOf(t *testing.T, marker string) string {
	t.Helper()
	f, err := os.Open("testkernels/broken.metal")
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		if strings.Contains(s.Text(), "// "+marker) {
			return fmt.Sprintf("testkernels/broken.metal:%d", n)
		}
	}
	t.Fatalf("no line marked %s", marker)
	return ""
}

// launchBroken runs a broken kernel on 128 threads and returns its KernelError.
func launchBroken(t *testing.T, kernel string, o mslemu.Options, bufs ...mslemu.Buffer) *mslemu.KernelError {
	t.Helper()
	if len(bufs) == 0 {
		bufs = []mslemu.Buffer{{Data: make([]byte, 4*128)}}
	}
	done := make(chan error, 1)
	go func() { done <- mslemu.LaunchWith(kernel, [3]int{1, 1, 1}, [3]int{128, 1, 1}, bufs, o) }()
	select {
	case err := <-done:
		var ke *mslemu.KernelError
		require.ErrorAs(t, err, &ke, "%s must fail", kernel)
		assert.Equal(t, kernel, ke.Kernel)
		t.Logf("%s (order %d):\n%v", kernel, o.Order, err)
		return ke
	case <-time.After(time.Minute):
		t.Fatalf("%s hangs", kernel)
		return nil
	}
}

func TestBrokenKernelsAreReported(t *testing.T) {
	requireEmulator(t)
	for _, tc := range []struct {
		kernel string
		want   []string // substrings of the message; MARKER:x means the site of that line
		racy   bool     // also a data race, which ThreadSanitizer stops the process for
	}{
		{"test_broken_barrier_in_branch", []string{"threadgroup_barrier at MARKER:BROKEN_BARRIER_LINE"}, true},
		{"test_broken_two_barriers", []string{"different barriers", "MARKER:EVEN_BARRIER_LINE", "MARKER:ODD_BARRIER_LINE"}, false},
		{"test_broken_divergent_simd", []string{"simd_sum at MARKER:DIVERGENT_SIMD_LINE"}, false},
		{"test_broken_early_return", []string{"returned", "threadgroup_barrier at MARKER:EARLY_RETURN_BARRIER_LINE"}, false},
	} {
		if tc.racy && mslemu.ThreadSanitizer {
			continue
		}
		for _, order := range []mslemu.Order{mslemu.Forward, mslemu.Reverse, mslemu.Shuffle} {
			ke := launchBroken(t, tc.kernel, mslemu.Options{Order: order, Seed: 3})
			for _, w := range tc.want {
				if m, ok := strings.CutPrefix(w, "MARKER:"); ok {
					w = siteOf(t, m)
				} else if i := strings.Index(w, "MARKER:"); i >= 0 {
					w = w[:i] + siteOf(t, w[i+len("MARKER:"):])
				}
				assert.Contains(t, ke.Msg, w, "%s order %d", tc.kernel, order)
			}
			assert.Contains(t, ke.Msg, "threadgroup (0,0,0)")
			assert.Contains(t, ke.Msg, "tid ", "a per-thread dump")
		}
	}
}

func skipRacy(t *testing.T) {
	if mslemu.ThreadSanitizer {
		t.Skip("a deliberate data race: ThreadSanitizer would stop the process")
	}
}

func TestSpinDeadlockTimesOut(t *testing.T) {
	requireEmulator(t)
	skipRacy(t)
	start := time.Now()
	ke := launchBroken(t, "test_broken_spin_deadlock", mslemu.Options{Timeout: 300 * time.Millisecond})
	assert.Contains(t, ke.Msg, "timed out: thread 0 was still running")
	assert.Less(t, time.Since(start), 20*time.Second)
	// The emulator is usable afterwards.
	TestMatmulTiled(t)
}

func TestOutOfBoundsAccessIsReported(t *testing.T) {
	requireEmulator(t)
	if mslemu.ThreadSanitizer {
		t.Skip("ThreadSanitizer intercepts the fault signals this relies on")
	}
	ke := launchBroken(t, "test_broken_out_of_bounds", mslemu.Options{})
	assert.Contains(t, ke.Msg, "past the end of buffer 0 (512 bytes)")

	ke = launchBroken(t, "test_broken_stack_overflow", mslemu.Options{})
	assert.Contains(t, ke.Msg, "stack overflow")

	ke = launchBroken(t, "test_broken_unbound", mslemu.Options{}, mslemu.Buffer{Data: make([]byte, 512)})
	assert.Contains(t, ke.Msg, "access to buffer 1, which the launch leaves unbound")
	TestVectors(t)
}

// A missing barrier gives wrong results (NaN from the poisoned threadgroup memory) in
// every order, and in the reverse order reads a value no thread has written.
func TestMissingBarrierIsVisible(t *testing.T) {
	requireEmulator(t)
	skipRacy(t)
	for _, order := range []mslemu.Order{mslemu.Forward, mslemu.Reverse, mslemu.Shuffle} {
		out := make([]byte, 4*128)
		require.NoError(t, mslemu.LaunchWith("test_racy_missing_barrier", [3]int{1, 1, 1}, [3]int{128, 1, 1},
			[]mslemu.Buffer{{Data: out}}, mslemu.Options{Order: order, Seed: 5}))
		wrong := 0
		for i, v := range mslemu.BytesFloat32(out) {
			if v != float32((i+1)%128) {
				wrong++
				assert.True(t, math.IsNaN(float64(v)), "a wrong value is the poison, not a stale one")
			}
		}
		assert.Positive(t, wrong, "order %d", order)
	}
}

func TestLaunchErrors(t *testing.T) {
	requireEmulator(t)
	err := mslemu.Launch("no_such_kernel", [3]int{1, 1, 1}, [3]int{1, 1, 1}, nil)
	assert.True(t, errors.Is(err, mslemu.ErrUnknownKernel), "%v", err)
	err = mslemu.Launch("test_vectors", [3]int{1, 1, 1}, [3]int{2048, 1, 1}, nil)
	assert.ErrorContains(t, err, "bad dispatch")
	assert.Contains(t, mslemu.Kernels(), "test_simdgroup_matmul")
	// Zero threadgroups: nothing runs.
	assert.NoError(t, mslemu.Launch("test_vectors", [3]int{0, 1, 1}, [3]int{32, 1, 1}, nil))
}

// Launches from many goroutines are serialised: each gets its own right answer.
func TestConcurrentLaunches(t *testing.T) {
	requireEmulator(t)
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]float32, 128)
			for i := range in {
				in[i] = float32(g*1000 + i)
			}
			out := make([]byte, 4*16*128)
			for rep := 0; rep < 5; rep++ {
				if !assert.NoError(t, mslemu.Launch("test_simd_functions", [3]int{1, 1, 1}, [3]int{128, 1, 1},
					[]mslemu.Buffer{{Data: mslemu.Float32Bytes(in)}, {Data: out}})) {
					return
				}
				got := mslemu.BytesFloat32(out)
				var total float64
				for _, v := range in {
					total += float64(v)
				}
				assert.InDelta(t, total, float64(got[15]), 1e-3*total)
			}
		}()
	}
	wg.Wait()
}

// While a launch has its fault handlers installed, Go's own nil-pointer panics on other
// threads still reach Go's handler and are recovered as usual.
func TestGoPanicsDuringLaunch(t *testing.T) {
	requireEmulator(t)
	if mslemu.ThreadSanitizer {
		t.Skip("ThreadSanitizer intercepts the fault signals this relies on")
	}
	stop := make(chan struct{})
	var recovered sync.WaitGroup
	recovered.Add(1)
	go func() {
		defer recovered.Done()
		n := 0
		for {
			select {
			case <-stop:
				assert.Positive(t, n)
				return
			default:
			}
			func() {
				defer func() {
					if recover() != nil {
						n++
					}
				}()
				var p *int
				*p = 1 // deliberately nil
			}()
		}
	}()
	for i := 0; i < 20; i++ {
		require.NoError(t, mslemu.Launch("test_barrier_loop", [3]int{1, 1, 1}, [3]int{128, 1, 1},
			[]mslemu.Buffer{{Data: mslemu.Uint32Bytes([]uint32{200})}, {Data: make([]byte, 4*128)}}))
		ke := launchBroken(t, "test_broken_out_of_bounds", mslemu.Options{})
		assert.Contains(t, ke.Msg, "past the end")
	}
	close(stop)
	recovered.Wait()
}
