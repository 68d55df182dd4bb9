// Package oracletest loads the external oracle: attention problems with their exact
// float64 results (O, the row logsumexp L, dQ, dK, dV), computed by PyTorch autograd in
// tools/oracle/attention_oracle.py from the contract text alone, and committed as .npy
// files under go/fallback/testdata/oracle. It is a test helper: the reference in
// go/fallback is held against these vectors, and so is every fast executor (CPU flash,
// the emulated Metal kernels), from whichever package its tests live in.
//
// What it gives: DataDir, which finds the vectors from any package's test; Load, which
// reads every case into a validated spec.Problem over float64 tensors plus dO and the
// expected results; Case.ProblemAs, which copies a case's problem and dO into another
// dtype for executors that do not take float64; and RelL2, the error measure, which
// treats matching infinities (the −Inf logsumexp of a row with no visible key) as equal.
//
// The inputs Q, K, V and dO are rounded by the script to values that float32, float16
// and bfloat16 all hold exactly, so ProblemAs loses nothing and the expected results stay
// the exact answer for the converted problem; only the executor's arithmetic differs.
//
// Not here: running executors, choosing tolerances (each test states its own), or
// regenerating the vectors (see tools/oracle/README.md).
package oracletest
