// A heartbeat plugin built by the Go toolchain, the Go host's own plugin language,
// with the standard library only:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o heartbeat.wasm .
//
// It decodes its config into map[string]any the way Go guests of the Go host do
// (the marker must arrive as int64), logs its greeting and a tick per second, and
// exports both probes.
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unsafe"
)

//go:wasmimport pulp log
func hostLog(level int32, ptr unsafe.Pointer, n int32) int32

func logf(level int32, format string, args ...any) {
	msg := []byte(fmt.Sprintf(format, args...))
	if len(msg) == 0 {
		return
	}
	hostLog(level, unsafe.Pointer(&msg[0]), int32(len(msg)))
}

// Buffers handed to the host stay referenced (pinned) until pulp_free, so Go's GC
// cannot reuse them while the host writes into them.
var pinned = map[uintptr][]byte{}

//go:wasmexport pulp_alloc
func pulpAlloc(size int32) int32 {
	if size <= 0 {
		size = 1
	}
	b := make([]byte, size)
	p := uintptr(unsafe.Pointer(&b[0]))
	pinned[p] = b
	return int32(p)
}

//go:wasmexport pulp_free
func pulpFree(ptr int32, size int32) {
	delete(pinned, uintptr(ptr))
}

func bytesAt(ptr, n int32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}

var (
	marker     int64
	lastCall   int64 = -1
	lastSecond int64
)

//go:wasmexport pulp_init
func pulpInit(ptr, n int32) int32 {
	if n == 0 {
		return 0
	}
	v, _, err := decode(bytesAt(ptr, n))
	if err != nil {
		logf(4, "config: %v", err)
		return 1
	}
	cfg, ok := v.(map[string]any)
	if !ok {
		return 2
	}
	m, ok := cfg["marker"].(int64)
	if !ok {
		logf(4, "config: marker is %T, want int64", cfg["marker"])
		return 3
	}
	marker = m
	if g, ok := cfg["greeting"].(string); ok {
		logf(2, "%s", g)
	}
	logf(2, "go-heartbeat: started at %s", time.Now().UTC().Format(time.RFC3339))
	return 0
}

//go:wasmexport pulp_step
func pulpStep(ptr, n int32) int32 {
	in := bytesAt(ptr, n)
	if len(in) < 20 {
		return 0
	}
	call := binary.LittleEndian.Uint64(in[0:8])
	wall := int64(binary.LittleEndian.Uint64(in[8:16]))
	lastCall = int64(call)
	if s := wall / 1e9; s != lastSecond {
		lastSecond = s
		logf(2, "go-heartbeat: tick %d", call)
	}
	return 0
}

//go:wasmexport pulp_shutdown
func pulpShutdown() int32 {
	logf(2, "go-heartbeat: shutting down")
	return 0
}

//go:wasmexport probe_last_call
func probeLastCall() int64 { return lastCall }

//go:wasmexport probe_config_marker
func probeConfigMarker() int64 { return marker }

func main() {}

// decode reads one msgpack value into the types a generic Go decoder gives:
// map[string]any, []any, string, []byte, int64 (every signed form), uint64,
// float64, bool, nil, time.Time (timestamp extension).
func decode(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("truncated")
	}
	m, b := b[0], b[1:]
	need := func(k int) error {
		if len(b) < k {
			return fmt.Errorf("truncated")
		}
		return nil
	}
	be := func(k int) uint64 {
		var v uint64
		for i := 0; i < k; i++ {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	switch {
	case m <= 0x7f:
		return int64(m), b, nil
	case m >= 0xe0:
		return int64(int8(m)), b, nil
	case m&0xf0 == 0x80, m == 0xde, m == 0xdf:
		n := int(m & 0x0f)
		if m == 0xde || m == 0xdf {
			k := 2 + 2*int(m-0xde)
			if err := need(k); err != nil {
				return nil, nil, err
			}
			n, b = int(be(k)), b[k:]
		}
		out := map[string]any{}
		for i := 0; i < n; i++ {
			k, rest, err := decode(b)
			if err != nil {
				return nil, nil, err
			}
			v, rest, err := decode(rest)
			if err != nil {
				return nil, nil, err
			}
			ks, _ := k.(string)
			out[ks], b = v, rest
		}
		return out, b, nil
	case m&0xf0 == 0x90, m == 0xdc, m == 0xdd:
		n := int(m & 0x0f)
		if m == 0xdc || m == 0xdd {
			k := 2 + 2*int(m-0xdc)
			if err := need(k); err != nil {
				return nil, nil, err
			}
			n, b = int(be(k)), b[k:]
		}
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			v, rest, err := decode(b)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		return out, b, nil
	case m&0xe0 == 0xa0, m >= 0xd9 && m <= 0xdb:
		n, k := int(m&0x1f), 0
		if m >= 0xd9 {
			k = 1 << (m - 0xd9)
			if err := need(k); err != nil {
				return nil, nil, err
			}
			n = int(be(k))
		}
		if err := need(k + n); err != nil {
			return nil, nil, err
		}
		return string(b[k : k+n]), b[k+n:], nil
	case m == 0xc0:
		return nil, b, nil
	case m == 0xc2, m == 0xc3:
		return m == 0xc3, b, nil
	case m >= 0xcc && m <= 0xcf:
		k := 1 << (m - 0xcc)
		if err := need(k); err != nil {
			return nil, nil, err
		}
		return be(k), b[k:], nil
	case m >= 0xd0 && m <= 0xd3:
		k := 1 << (m - 0xd0)
		if err := need(k); err != nil {
			return nil, nil, err
		}
		shift := 64 - 8*k
		return int64(be(k)<<shift) >> shift, b[k:], nil
	case m == 0xcb:
		if err := need(8); err != nil {
			return nil, nil, err
		}
		return math.Float64frombits(be(8)), b[8:], nil
	case m >= 0xd6 && m <= 0xd8, m == 0xc7:
		// timestamp: fixext 4 / 8, or ext8 with 12 bytes
		n := 4 << (m - 0xd6)
		if m == 0xc7 {
			if err := need(1); err != nil {
				return nil, nil, err
			}
			n, b = int(b[0]), b[1:]
		}
		if err := need(1 + n); err != nil {
			return nil, nil, err
		}
		if int8(b[0]) != -1 {
			return nil, nil, fmt.Errorf("unknown extension %d", int8(b[0]))
		}
		d := b[1 : 1+n]
		b = b[1+n:]
		switch n {
		case 4:
			return time.Unix(int64(binary.BigEndian.Uint32(d)), 0), b, nil
		case 8:
			v := binary.BigEndian.Uint64(d)
			return time.Unix(int64(v&(1<<34-1)), int64(v>>34)), b, nil
		case 12:
			return time.Unix(int64(binary.BigEndian.Uint64(d[4:])), int64(binary.BigEndian.Uint32(d[:4]))), b, nil
		}
	}
	return nil, nil, fmt.Errorf("unsupported msgpack marker %#x", m)
}
