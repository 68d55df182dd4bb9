package metallib

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// underBazel reports whether the test runs under `bazel test`.
func underBazel() bool { return os.Getenv("TEST_SRCDIR") != "" }

// On macOS under Bazel both metallibs are runfiles and are Metal libraries (a metallib
// file starts with the magic "MTLB"); everywhere else Path says they were not built.
func TestPathFindsBothLibrariesOnlyWhereBazelBuildsThem(t *testing.T) {
	for _, name := range []string{Attention, AttentionBF16} {
		t.Run(name, func(t *testing.T) {
			b, err := Load(name)
			if runtime.GOOS == "darwin" && underBazel() {
				require.NoError(t, err)
				require.GreaterOrEqual(t, len(b), 4)
				assert.Equal(t, "MTLB", string(b[:4]))
				return
			}
			require.ErrorIs(t, err, ErrNotBuilt)
			assert.Nil(t, b)
		})
	}
}

func TestPathRejectsUnknownNames(t *testing.T) {
	for _, name := range []string{"", "default", "../attention", "attention.metallib"} {
		_, err := Path(name)
		require.Error(t, err, name)
		assert.NotErrorIs(t, err, ErrNotBuilt, name)
		assert.Contains(t, err.Error(), "unknown library")
	}
}
