// Package cpuflash is Orchard's fast CPU executor: FlashAttention's tiled algorithm,
// forward and backward, for machines without a usable Metal device (Linux servers, CI,
// virtual Macs). The engine prefers it to the reference (priority 100 against 0).
//
// # Algorithm
//
// Forward: one task per (batch, head, query block) on a pool of goroutines sized by
// GOMAXPROCS. A task walks the key blocks its rows can see — lengths, causal masking (both
// alignments) and windows skip whole blocks — and keeps the online softmax in base 2:
// Sᵀ = K·Qᵀ, the running max and sum per query row, P = 2^(logit − max), O += P·V. It
// saves L = ln 2 · (max + log2 sum) per row.
//
// Backward: D_i = dO_i·O_i first, then P = 2^(logit − L) recomputed from the saved L and
// dS = P ∘ (dP − D). Two schedules, chosen per call: with few (batch, kv head) pairs for
// the workers, one task per (batch, kv head, key block) sums dK and dV over the group's
// query heads and every query block that sees the block, then one task per (batch, head,
// query block) sums dQ over its key blocks (7 tile products where the FLOP count assumes
// 5); with enough pairs, one task per (batch, kv head) does both, summing dQ in a
// per-worker float32 buffer (5 products). No output element is written by two tasks, both
// schedules visit the same tiles and sum each element in the same order with the same
// operations, so results are bitwise identical for any number of workers.
//
// On tiles the diagonal crosses (causal, windows, lengths) the products compute only the
// band of visible (query, key) pairs. A bias is applied relative to each row's largest
// finite bias, so biases up to ±MaxFloat32 stay finite and exact; the backward recomputes
// L relative to that offset when |L| is too large for float64 to carry it.
//
// Calls check their context between tiles and return an error wrapping ctx.Err(); they
// compute their working memory first and refuse what exceeds spec.CheckMemory's budget;
// destinations passed as into are written in place; scratch comes from a cache the
// executor keeps between calls (Params.ScratchCache), so a training loop with destinations
// allocates almost nothing per step.
//
// Memory is O(N): per-worker tiles sized by the blocks (96 queries × 96 keys for D ≤ 128),
// two float32 values per query row in the backward and, on the fused schedule, one dQ
// buffer per worker (N × D per query head of a kv group, at most 64 MiB); never an N×M
// matrix. Tiles of K, V, Q and dO are copied (and converted) into the worker's scratch
// before the products read them, except float32 row tiles that already have the layout
// a product reads (D a multiple of 16, a whole number of 6-row groups), which are read in
// place; transposed tiles are always copies (16×16 blocks in registers on AVX-512).
//
// # Kernels
//
// The inner loops — a GEMM micro-kernel whose A operand is read through two strides (so
// one kernel serves A·B and Aᵀ·B), a vectorised exp2, column max, dS = P ∘ (dP − D) and
// row scaling — exist in Go assembly as three sets: AVX-512 (amd64 with AVX-512F and VL:
// 6-row blocks of 64, 32 or 16 columns, ZMM registers), AVX2 + FMA (amd64: 6×16 blocks)
// and NEON (arm64), and in pure Go for other architectures, older CPUs and the purego
// build tag. The executor picks the best set the CPU runs when it is built
// (golang.org/x/sys/cpu checks the CPU and the OS; NEON is part of every arm64 CPU Go
// supports); Params.Kernels or the ORCHARD_CPUFLASH_KERNELS variable force one, for tests
// and benchmarks. Every set is tested against the reference and is bitwise reproducible
// across worker counts; different sets round differently. The AVX-512 GEMM is generated
// by gen_avx512.go. The NEON kernels are tested under qemu-aarch64 on Linux (see
// docs/PERFORMANCE.md for the command).
//
// # Options
//
// Every option of the contract runs here: GQA and MQA (the query heads of a group read
// their kv head's K and V, which are never replicated per query head), causal top-left and bottom-right, windows,
// bool and additive masks with broadcasting, softcap, dropout (package philox's stream,
// the same elements as every other executor), variable lengths, and float32, float16 and
// bfloat16 inputs (converted to float32 tile by tile; outputs in the input dtype, or
// float32 gradients with Options.GradDType; L in float64, or float32 into a float32
// destination). Masks, softcap and dropout take a slower per-element path for the logits; the
// products stay in the kernels. Float64 problems are declined: they are the reference's.
//
// Not here: device memory, the engine's fallback logic, autograd.
package cpuflash
