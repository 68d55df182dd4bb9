package safetensors_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Writing two tensors and reading one back with an explicit conversion; a missing tensor
// is a typed error that names it.
func Example() {
	w, _ := tensor.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b, _ := tensor.FromFloat64s(tensor.BFloat16, []float64{0.5, -1.25, 3}, 3)
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, []safetensors.Named{{Name: "proj.weight", Tensor: w}, {Name: "proj.bias", Tensor: b}}, map[string]string{"format": "pt"}); err != nil {
		panic(err)
	}

	f, err := safetensors.Parse(buf.Bytes()) // safetensors.Open(path) for a file
	if err != nil {
		panic(err)
	}
	info, _ := f.Info("proj.bias")
	bias, err := f.Load("proj.bias", tensor.Float32, 3) // bfloat16 in the file, float32 here
	if err != nil {
		panic(err)
	}
	v, _ := bias.Float32s()
	fmt.Println(f.Names(), info.DType, v)

	_, err = f.Load("proj.scale", tensor.Float32, 3)
	var e *safetensors.Error
	fmt.Println(errors.Is(err, safetensors.ErrMissing), errors.As(err, &e) && e.Tensor == "proj.scale")
	// Output:
	// [proj.weight proj.bias] BF16 [0.5 -1.25 3]
	// true true
}
