package oracletest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/orchard-ml/orchard/go/fallback/oracletest"
)

// FuzzLoadCase feeds LoadCase a fuzzed case.json and a fuzzed q.npy beside a real case's
// other files (plain_n_gt_m): it returns an error or a case whose problem is valid, and
// never panics nor allocates from a size that overflowed. `go test -fuzz FuzzLoadCase
// ./go/fallback/oracletest` explores further.
func FuzzLoadCase(f *testing.F) {
	src := filepath.Join(oracletest.DataDir(), "plain_n_gt_m")
	caseJSON, err := os.ReadFile(filepath.Join(src, "case.json"))
	if err != nil {
		f.Fatal(err)
	}
	qNpy, err := os.ReadFile(filepath.Join(src, "q.npy"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(caseJSON, qNpy)
	f.Add([]byte(`{"format":1,"name":"plain_n_gt_m","dims":{"B":4294967296,"H":4294967296,"Hkv":1,"N":1,"M":1,"D":1},"causal":"none"}`), qNpy)
	f.Add([]byte(`{"format":1,"name":"plain_n_gt_m","dims":{"B":-1,"H":3,"Hkv":3,"N":17,"M":6,"D":8},"causal":"none"}`), qNpy[:40])
	// One directory per fuzzing process, holding the case's files; each run rewrites only
	// the two fuzzed ones (runs within a process are sequential).
	dir := filepath.Join(f.TempDir(), "plain_n_gt_m")
	if err := os.Mkdir(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, js, q []byte) {
		if err := os.WriteFile(filepath.Join(dir, "case.json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "q.npy"), q, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := oracletest.LoadCase(dir)
		if err != nil {
			return
		}
		if c.Problem == nil {
			t.Fatal("LoadCase returned no error and no problem")
		}
	})
}
