package metal

import (
	"fmt"

	"github.com/orchard-ml/orchard/native/msl"
)

// kernelFile is the native/msl file holding the attention kernels.
const kernelFile = "attention.metal"

// defaultSource returns native/msl's kernels as one self-contained source:
// Metal compiles from a string with no include path, so msl.Source inlines the
// local headers.
func defaultSource() (string, error) {
	src, err := msl.Source(kernelFile)
	if err != nil {
		return "", fmt.Errorf("reading the kernels: %w", err)
	}
	return src, nil
}
