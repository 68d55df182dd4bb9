// Package checkpoint saves and restores a training run: the parameters, the AdamW state and
// a small JSON record of where the run stands (step, seed, dropout offset), so that a run
// of 2·K steps and a run of K steps, a save, a restore and K more steps end with the same
// bits.
//
// A checkpoint is a directory of three files:
//
//	weights.safetensors    every parameter's value, under its optim.Param name, in its dtype
//	optimizer.safetensors  AdamW's moments per parameter, "<name>.exp_avg" and
//	                       "<name>.exp_avg_sq" (float64, exact), and each parameter's step
//	                       count in the header's metadata
//	state.json             Meta: step, seed, dropout offset, free-form extras
//
// Each file is written through a temporary file and renamed, and state.json is written
// last, so a directory whose state.json exists holds a complete checkpoint. Restore checks
// every tensor's name, shape and dtype against the parameters before it changes any.
//
// Not here: sharded or asynchronous checkpoints, keeping the last N.
package checkpoint
