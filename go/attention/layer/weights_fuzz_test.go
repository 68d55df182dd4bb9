package layer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/attention/spec"
)

// FuzzLoad: any bytes given to the weight loader either load (the file parses and holds
// every tensor with the right shape) or fail with a typed error; the layer never panics and
// keeps its weights on failure.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"plain_weights_bf16", "plain_weights_f16"} {
		b, err := os.ReadFile(filepath.Join("testdata", "torch", name+".safetensors"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := safetensors.Parse(b)
		if err != nil {
			return // the reader's own fuzz target covers this
		}
		for _, p := range []Params{{Dim: 16, Heads: 4, Bias: true}, {Dim: 32, Heads: 8, KVHeads: 2}} {
			m, err := New(p, ref())
			if err != nil {
				t.Fatal(err)
			}
			naming, err := DetectNaming(sf, "")
			if err != nil {
				naming = NamingTorchMHA
			}
			before := snapshot(t, m)
			err = m.Load(sf, naming, "")
			if err == nil {
				continue
			}
			var se *safetensors.Error
			var ae *spec.ArgError
			if !errors.As(err, &se) && !errors.As(err, &ae) {
				t.Fatalf("untyped error %v", err)
			}
			after := snapshot(t, m)
			for i := range before {
				for j := range before[i] {
					if before[i][j] != after[i][j] {
						t.Fatalf("a failed load changed the weights")
					}
				}
			}
		}
	})
}
