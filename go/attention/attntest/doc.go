// Package attntest is Orchard's one shared test-problem package: it draws attention
// problems over every option of the contract in package spec (OptionCases, RandomCase),
// builds their tensors in every dtype (Tensor, Build), compares results element by element
// or by relative L2 norm (AssertClose, RelL2), records inputs to prove they were not
// modified (TakeInputState), and holds the numeric guarantees every executor keeps as
// tests an executor's suite calls (Numerics): logits up to ±1e4 after scaling never
// overflow, NaN or Inf in one batch and head stays there, fully masked rows give exact
// zeros.
//
// The reference (go/fallback) and the engine run these here and in the fallback suite.
// Suites of other executors migrate to it: replace a local copy of the problem generators
// with attntest.OptionCases / RandomCase / Build, and call
//
//	attntest.Numerics{Executor: myExecutor, DType: tensor.Float32, Tol: 2e-4}.Run(t)
//
// from one test of the executor's package (cpuflash, msltest, metal, layer).
//
// Not for production code: it imports testing and testify.
package attntest
