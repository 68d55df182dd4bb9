// Package refcheck holds an executor's attention outputs against the exact reference
// (go/fallback, float64) with the tolerances the project states for each dtype, and
// explains every verdict in a sentence. tools/msltest's tests and tools/gpucheck's
// catalogue both judge kernels with it, so a kernel passes on a Mac exactly when it would
// pass under emulation.
//
// The measure is relative L2 error, ‖got − want‖ / ‖want‖, never NaN or ±Inf in the
// output; L must be −Inf exactly where the reference's is (rows with no visible key). dQ
// and dK get an absolute allowance for the rounding of terms that cancel (see
// RoundingAllowance and GradMagnitudes).
package refcheck
