package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/orchard-ml/orchard/go/tensor"
)

// Named is one tensor to write.
type Named struct {
	Name   string
	Tensor *tensor.Tensor // float32, float16, bfloat16 or float64, host-visible; any layout
}

// Write writes tensors, in the order given, and metadata (may be nil) as a safetensors
// file. Each tensor is stored in its own dtype; convert first to store another. Names must
// be unique, non-empty and not "__metadata__". The header is padded with spaces to a
// multiple of 8 bytes, as Hugging Face's writer does, so the data section is aligned.
func Write(w io.Writer, tensors []Named, metadata map[string]string) error {
	type entry struct {
		DType       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	var hdr strings.Builder
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		b, err := json.Marshal(metadata)
		if err != nil {
			return fmt.Errorf("safetensors: metadata: %w", err)
		}
		hdr.WriteString(`"` + metadataKey + `":`)
		hdr.Write(b)
	}
	seen := map[string]bool{}
	var at int64
	for i, nt := range tensors {
		switch {
		case nt.Name == "" || nt.Name == metadataKey:
			return fmt.Errorf("safetensors: tensors[%d]: name %q is not allowed", i, nt.Name)
		case seen[nt.Name]:
			return fmt.Errorf("safetensors: tensors[%d]: name %q appears twice", i, nt.Name)
		case nt.Tensor == nil:
			return fmt.Errorf("safetensors: tensor %q is nil", nt.Name)
		case !nt.Tensor.Storage().Kind().HostVisible():
			return fmt.Errorf("safetensors: tensor %q is in %v storage, which the CPU cannot read", nt.Name, nt.Tensor.Storage().Kind())
		}
		seen[nt.Name] = true
		dn, ok := DTypeName(nt.Tensor.DType())
		if !ok {
			return fmt.Errorf("safetensors: tensor %q: dtype %v cannot be stored", nt.Name, nt.Tensor.DType())
		}
		n := int64(nt.Tensor.Bytes())
		shape := nt.Tensor.Shape()
		if shape == nil {
			shape = []int{} // a scalar: "shape": []
		}
		b, err := json.Marshal(entry{DType: dn, Shape: shape, DataOffsets: [2]int64{at, at + n}})
		if err != nil {
			return err
		}
		name, _ := json.Marshal(nt.Name)
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		hdr.Write(name)
		hdr.WriteByte(':')
		hdr.Write(b)
		at += n
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	bw := bufio.NewWriter(w)
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(hdr.Len()))
	bw.Write(lb[:])
	bw.WriteString(hdr.String())
	for _, nt := range tensors {
		c, _, err := nt.Tensor.Contiguous()
		if err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", nt.Name, err)
		}
		lo := c.Offset() * c.DType().Size()
		if _, err := bw.Write(c.Storage().Bytes()[lo : lo+c.Bytes()]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteFile writes the file at path through a temporary file in the same directory that
// is renamed into place, so a reader never sees half a file.
func WriteFile(path string, tensors []Named, metadata map[string]string) (err error) {
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
	if err = Write(tmp, tensors, metadata); err != nil {
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
