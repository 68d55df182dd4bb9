package tensor

import "io"

// StorageKind says where a tensor's bytes live and who can read them.
type StorageKind uint8

// Storage kinds. Host memory is ordinary Go memory. Shared memory is device memory the
// CPU can also read (Metal MTLStorageModeShared on unified memory). Private memory only
// the GPU can read (MTLStorageModePrivate). Managed memory has a CPU and a GPU copy kept
// in step by explicit synchronisation (MTLStorageModeManaged).
const (
	Host StorageKind = iota + 1
	Shared
	Private
	Managed
)

func (k StorageKind) String() string {
	switch k {
	case Host:
		return "host"
	case Shared:
		return "shared"
	case Private:
		return "private"
	case Managed:
		return "managed"
	}
	return "unknown"
}

// HostVisible reports whether the CPU can read and write the bytes directly.
func (k StorageKind) HostVisible() bool { return k == Host || k == Shared || k == Managed }

// Storage is the memory under a tensor.
type Storage interface {
	// Kind says where the bytes live.
	Kind() StorageKind
	// Len is the size in bytes.
	Len() int
	// Bytes returns the host view of the memory, or nil when it is not host visible.
	Bytes() []byte
}

// DeviceStorage is storage held by a device (go/allocator's MetalStorage, a Metal
// buffer). Bytes is the host view where one exists (shared and managed memory) and nil
// for private memory; ReadAt and WriteAt reach the bytes from the host in every mode,
// through a staging copy where the CPU cannot address them. The memory lives as long as
// the storage value is reachable (or until the owner closes it), not as long as a slice
// returned by Bytes: keep the tensor while using its bytes.
type DeviceStorage interface {
	Storage
	io.ReaderAt
	io.WriterAt
}

// HostStorage is Go memory.
type HostStorage struct{ data []byte }

// NewHostStorage allocates n zeroed bytes of Go memory.
func NewHostStorage(n int) *HostStorage { return &HostStorage{data: make([]byte, n)} }

// Kind implements Storage.
func (s *HostStorage) Kind() StorageKind { return Host }

// Len implements Storage.
func (s *HostStorage) Len() int { return len(s.data) }

// Bytes implements Storage.
func (s *HostStorage) Bytes() []byte { return s.data }
