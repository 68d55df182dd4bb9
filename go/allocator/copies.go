package allocator

import (
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Copy counts copies of one kind and the bytes they moved.
type Copy struct {
	Count int64
	Bytes int64
}

// CopyStats maps a kind of copy to its counts. Kinds are fixed strings chosen by the code
// that copies ("prepare: host", "metal: upload shared", "metal: blit private→staging", ...),
// so the map stays small however many calls run.
type CopyStats map[string]Copy

// Total sums every kind.
func (s CopyStats) Total() Copy {
	var t Copy
	for _, c := range s {
		t.Count += c.Count
		t.Bytes += c.Bytes
	}
	return t
}

// Merge returns the kind-by-kind sum of s and others, as a new map.
func (s CopyStats) Merge(others ...CopyStats) CopyStats {
	out := maps.Clone(s)
	if out == nil {
		out = CopyStats{}
	}
	for _, o := range others {
		for k, c := range o {
			t := out[k]
			t.Count += c.Count
			t.Bytes += c.Bytes
			out[k] = t
		}
	}
	return out
}

// String lists the kinds in order, e.g. "prepare: host 2 (4096 B)".
func (s CopyStats) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		c := s[k]
		b.WriteString(k)
		b.WriteString(" ")
		b.WriteString(strconv.FormatInt(c.Count, 10))
		b.WriteString(" (")
		b.WriteString(strconv.FormatInt(c.Bytes, 10))
		b.WriteString(" B)")
	}
	if len(keys) == 0 {
		return "none"
	}
	return b.String()
}

// CopyCounter accumulates CopyStats. The zero value is ready; it is safe for concurrent use.
type CopyCounter struct {
	mu sync.Mutex
	m  CopyStats
}

// Add records one copy of the given kind.
func (c *CopyCounter) Add(kind string, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = CopyStats{}
	}
	t := c.m[kind]
	t.Count++
	t.Bytes += bytes
	c.m[kind] = t
}

// Snapshot returns a copy of the counts so far.
func (c *CopyCounter) Snapshot() CopyStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := maps.Clone(c.m)
	if out == nil {
		out = CopyStats{}
	}
	return out
}
