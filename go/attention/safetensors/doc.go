// Package safetensors reads and writes the safetensors format (Hugging Face's: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte
// range, then the raw little-endian data) for Orchard's tensors: float32, float16,
// bfloat16 and float64. The layer's weight loaders (package layer) and checkpoints
// (package checkpoint) are built on it.
//
// The reader is written here rather than taken from github.com/nlpodyssey/safetensors,
// the Go package the module proxy serves (a pseudo-version from February 2025, no tagged
// release). That package parses only a whole file already in memory, returns untyped
// errors (fmt.Errorf strings) that name no tensor for most rules, and knows nothing of
// Orchard's tensor type, so every caller would wrap, re-check and convert anyway. This
// reader works from an io.ReaderAt of known size (a file is not read whole: only the header
// and the tensors asked for), refuses before allocating anything larger than the file or
// a header over MaxHeaderBytes, and reports every broken rule as an *Error that names the
// tensor and wraps one of a few sentinels (ErrMalformed, ErrTruncated, ErrHeaderTooLarge,
// ErrMissing, ErrShape, ErrDType, and ErrUnexpected for loaders), so callers can tell a missing tensor from a corrupt
// file with errors.Is.
//
// The header rules are the format's: a JSON object whose keys are unique tensor names
// (and an optional "__metadata__" object of string values); each tensor's data_offsets
// are relative to the data section, tensors follow each other without gaps or overlap
// in offset order, and the data section ends exactly where the last tensor does. A dtype
// the package does not compute in (I8, I32, BOOL, ...) is listed by Info but refused by
// Tensor with ErrDType.
//
// Conversion is explicit: Tensor returns a tensor in the file's dtype, Load converts to
// the dtype the caller names (rounding to nearest even when narrowing), and Write stores
// each tensor in its own dtype, so a caller converts before writing to store another.
//
// Not here: memory-mapping, big-endian hosts, dtypes other than the four above for data.
package safetensors
