package checkpoint_test

import (
	"fmt"
	"os"

	"github.com/orchard-ml/orchard/go/attention/checkpoint"
	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Saving a run after one AdamW step and restoring it into fresh tensors and a fresh
// optimizer: the next step continues where the saved run stood.
func Example() {
	newParam := func(v, g []float32) optim.Param {
		val, _ := tensor.FromFloat32s(v, len(v))
		grad, _ := tensor.FromFloat32s(g, len(g))
		return optim.Param{Name: "w", Value: val, Grad: grad}
	}
	params := []optim.Param{newParam([]float32{1, 2, 3}, []float32{0.5, -0.5, 1})}
	opt, _ := optim.New(optim.DefaultAdamW(0.1))
	if err := opt.Step(params); err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	if err := checkpoint.Save(dir, params, opt, checkpoint.Meta{Step: 1, Seed: 7, DropoutOffset: 1}); err != nil {
		panic(err)
	}

	fresh := []optim.Param{newParam([]float32{0, 0, 0}, []float32{0.5, -0.5, 1})}
	opt2, _ := optim.New(optim.DefaultAdamW(0.1))
	meta, err := checkpoint.Restore(dir, fresh, opt2)
	if err != nil {
		panic(err)
	}
	w, _ := fresh[0].Value.Float32s()
	fmt.Println(meta.Step, meta.Seed, meta.DropoutOffset, w, opt2.Steps(fresh[0].Value))
	// Output: 1 7 1 [0.899 2.098 2.897] 1
}
