package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/tensor"
)

// File names inside a checkpoint directory.
const (
	WeightsFile   = "weights.safetensors"
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "state.json"
)

// FormatVersion is written to state.json and checked on restore.
const FormatVersion = 1

// Meta is where a run stands.
type Meta struct {
	Version       int               `json:"version"`
	Step          int               `json:"step"`           // optimizer steps taken
	Seed          int64             `json:"seed"`           // the run's seed
	DropoutOffset uint64            `json:"dropout_offset"` // the Philox offset of the next training forward
	Extra         map[string]string `json:"extra,omitempty"`
}

// ErrMismatch is wrapped when a checkpoint does not fit the parameters it is restored into.
var ErrMismatch = errors.New("checkpoint: does not fit the parameters")

// Save writes a checkpoint of params and opt's state for them into dir (created if
// needed). Parameter names must be unique and non-empty. A parameter the optimizer has not
// stepped yet is saved without moments.
func Save(dir string, params []optim.Param, opt *optim.AdamW, meta Meta) error {
	if opt == nil {
		return fmt.Errorf("checkpoint: the optimizer is nil")
	}
	if err := checkNames(params); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	weights := make([]safetensors.Named, 0, len(params))
	var moments []safetensors.Named
	steps := map[string]string{}
	for _, p := range params {
		weights = append(weights, safetensors.Named{Name: p.Name, Tensor: p.Value})
		st, ok := opt.State(p.Value)
		if !ok {
			continue
		}
		m, err := tensor.FromFloat64s(tensor.Float64, st.M, p.Value.Shape()...)
		if err != nil {
			return err
		}
		v, err := tensor.FromFloat64s(tensor.Float64, st.V, p.Value.Shape()...)
		if err != nil {
			return err
		}
		moments = append(moments, safetensors.Named{Name: p.Name + ".exp_avg", Tensor: m}, safetensors.Named{Name: p.Name + ".exp_avg_sq", Tensor: v})
		steps[p.Name] = strconv.Itoa(st.Step)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), weights, map[string]string{"format": "orchard"}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, OptimizerFile), moments, steps); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	meta.Version = FormatVersion
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, StateFile), append(b, '\n'))
}

// Restore reads the checkpoint in dir into params (values replaced in place) and opt (the
// moments and step counts of those parameters), and returns its Meta. Every tensor is read
// and checked first: on error no parameter and no optimizer state has changed. The
// parameters must be the ones saved: same names, shapes and dtypes (an extra or missing
// parameter is an error wrapping ErrMismatch or safetensors.ErrMissing).
func Restore(dir string, params []optim.Param, opt *optim.AdamW) (Meta, error) {
	if opt == nil {
		return Meta{}, fmt.Errorf("checkpoint: the optimizer is nil")
	}
	if err := checkNames(params); err != nil {
		return Meta{}, err
	}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return Meta{}, fmt.Errorf("checkpoint: %w", err)
	}
	var meta Meta
	if err := json.Unmarshal(b, &meta); err != nil {
		return Meta{}, fmt.Errorf("checkpoint: %s: %w", StateFile, err)
	}
	if meta.Version != FormatVersion {
		return Meta{}, fmt.Errorf("checkpoint: %s has version %d, this code reads %d: %w", StateFile, meta.Version, FormatVersion, ErrMismatch)
	}
	wf, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		return Meta{}, fmt.Errorf("checkpoint: %w", err)
	}
	defer wf.Close()
	of, err := safetensors.Open(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return Meta{}, fmt.Errorf("checkpoint: %w", err)
	}
	defer of.Close()
	if n := len(wf.Names()); n != len(params) {
		return Meta{}, fmt.Errorf("checkpoint: %s holds %d tensors for %d parameters: %w", WeightsFile, n, len(params), ErrMismatch)
	}
	steps := of.Metadata()
	vals := make([]*tensor.Tensor, len(params))
	states := make([]*optim.State, len(params))
	for i, p := range params {
		info, ok := wf.Info(p.Name)
		if ok {
			if dt, _ := safetensors.DTypeName(p.Value.DType()); info.DType != dt {
				return Meta{}, fmt.Errorf("checkpoint: %w", &safetensors.Error{Tensor: p.Name, Kind: safetensors.ErrDType,
					Detail: fmt.Sprintf("%s in the checkpoint, the parameter is %v", info.DType, p.Value.DType())})
			}
		}
		if vals[i], err = wf.Load(p.Name, p.Value.DType(), p.Value.Shape()...); err != nil {
			return Meta{}, fmt.Errorf("checkpoint: %w", err)
		}
		s, ok := steps[p.Name]
		if !ok {
			continue // not stepped when saved
		}
		step, err := strconv.Atoi(s)
		if err != nil {
			return Meta{}, fmt.Errorf("checkpoint: step count %q of %s: %w", s, p.Name, ErrMismatch)
		}
		m, err := of.Load(p.Name+".exp_avg", tensor.Float64, p.Value.Shape()...)
		if err != nil {
			return Meta{}, fmt.Errorf("checkpoint: %w", err)
		}
		v, err := of.Load(p.Name+".exp_avg_sq", tensor.Float64, p.Value.Shape()...)
		if err != nil {
			return Meta{}, fmt.Errorf("checkpoint: %w", err)
		}
		ms, _ := m.Float64s()
		vs, _ := v.Float64s()
		states[i] = &optim.State{Step: step, M: ms, V: vs}
	}
	// Check the states with a scratch optimizer, so that opt changes only when all fit.
	scratch, err := optim.New(opt.Params())
	if err != nil {
		return Meta{}, err
	}
	for i, p := range params {
		if states[i] != nil {
			if err := scratch.SetState(p.Value, *states[i]); err != nil {
				return Meta{}, fmt.Errorf("checkpoint: optimizer state of %s: %w", p.Name, err)
			}
		}
	}
	for i, p := range params {
		if err := vals[i].CopyInto(p.Value); err != nil {
			return Meta{}, fmt.Errorf("checkpoint: %s: %w", p.Name, err)
		}
		if states[i] != nil {
			if err := opt.SetState(p.Value, *states[i]); err != nil {
				return Meta{}, err
			}
		}
	}
	return meta, nil
}

func checkNames(params []optim.Param) error {
	var names []string
	for i, p := range params {
		if p.Name == "" || p.Value == nil {
			return fmt.Errorf("checkpoint: params[%d] needs a name and a value", i)
		}
		if slices.Contains(names, p.Name) {
			return fmt.Errorf("checkpoint: parameter name %q appears twice", p.Name)
		}
		names = append(names, p.Name)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
