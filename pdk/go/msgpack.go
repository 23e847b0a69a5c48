package pdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// Map is a msgpack map with string keys, written in the order given (requests to
// the host are maps; see Encode).
type Map []KV

// KV is one entry of a Map.
type KV struct {
	Key   string
	Value any
}

// Bin marks bytes that are msgpack bin (a []byte is bin too).
type Bin []byte

// Encode writes v as msgpack: nil, bool, every int and uint type, float32/64,
// string, []byte and Bin as bin, Map, map[string]string and map[string]any (keys
// sorted), []any, []string, []int64.
func Encode(v any) ([]byte, error) {
	return appendValue(nil, v, 0)
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendUint(b, uint64(n))
	}
	if n >= -32 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

func appendLen(b []byte, n int, fix, fixMax byte, m8, m16, m32 byte) []byte {
	switch {
	case fix != 0 && n <= int(fixMax):
		return append(b, fix|byte(n))
	case m8 != 0 && n <= math.MaxUint8:
		return append(b, m8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, m32), uint32(n))
}

func appendStr(b []byte, s string) []byte {
	return append(appendLen(b, len(s), 0xa0, 31, 0xd9, 0xda, 0xdb), s...)
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > 64 {
		return nil, errors.New("msgpack: nested too deeply")
	}
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case bool:
		if x {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case int:
		return appendInt(b, int64(x)), nil
	case int8:
		return appendInt(b, int64(x)), nil
	case int16:
		return appendInt(b, int64(x)), nil
	case int32:
		return appendInt(b, int64(x)), nil
	case int64:
		return appendInt(b, x), nil
	case uint:
		return appendUint(b, uint64(x)), nil
	case uint8:
		return appendUint(b, uint64(x)), nil
	case uint16:
		return appendUint(b, uint64(x)), nil
	case uint32:
		return appendUint(b, uint64(x)), nil
	case uint64:
		return appendUint(b, x), nil
	case float32:
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(float64(x))), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(x)), nil
	case string:
		return appendStr(b, x), nil
	case []byte:
		return append(appendLen(b, len(x), 0, 0, 0xc4, 0xc5, 0xc6), x...), nil
	case Bin:
		return append(appendLen(b, len(x), 0, 0, 0xc4, 0xc5, 0xc6), x...), nil
	case Map:
		b = appendLen(b, len(x), 0x80, 15, 0, 0xde, 0xdf)
		for _, kv := range x {
			b = appendStr(b, kv.Key)
			if b, err = appendValue(b, kv.Value, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]string:
		b = appendLen(b, len(x), 0x80, 15, 0, 0xde, 0xdf)
		for _, k := range sortedKeys(x) {
			b = appendStr(appendStr(b, k), x[k])
		}
		return b, nil
	case map[string]any:
		b = appendLen(b, len(x), 0x80, 15, 0, 0xde, 0xdf)
		for _, k := range sortedKeys(x) {
			b = appendStr(b, k)
			if b, err = appendValue(b, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case []any:
		b = appendLen(b, len(x), 0x90, 15, 0, 0xdc, 0xdd)
		for _, e := range x {
			if b, err = appendValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case []string:
		b = appendLen(b, len(x), 0x90, 15, 0, 0xdc, 0xdd)
		for _, e := range x {
			b = appendStr(b, e)
		}
		return b, nil
	case []int64:
		b = appendLen(b, len(x), 0x90, 15, 0, 0xdc, 0xdd)
		for _, e := range x {
			b = appendInt(b, e)
		}
		return b, nil
	}
	return nil, fmt.Errorf("msgpack: cannot encode %T", v)
}

// Decode reads one msgpack value: nil, bool, int64 (uint64 above MaxInt64),
// float64, string, []byte, []any, map[string]any (other keys as their fmt text),
// and a timestamp extension as its raw bytes. Nesting deeper than 64 is an error.
func Decode(b []byte) (any, error) {
	v, rest, err := decode(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("msgpack: %d bytes after the value", len(rest))
	}
	return v, nil
}

var errShort = errors.New("msgpack: cut short")

func take(b []byte, n uint64) ([]byte, []byte, error) {
	if uint64(len(b)) < n {
		return nil, nil, errShort
	}
	return b[:n], b[n:], nil
}

func be(b []byte, n int) (uint64, []byte, error) {
	s, rest, err := take(b, uint64(n))
	if err != nil {
		return 0, nil, err
	}
	var v uint64
	for _, x := range s {
		v = v<<8 | uint64(x)
	}
	return v, rest, nil
}

func decode(b []byte, depth int) (any, []byte, error) {
	if depth > 64 {
		return nil, nil, errors.New("msgpack: nested too deeply")
	}
	if len(b) == 0 {
		return nil, nil, errShort
	}
	c, b := b[0], b[1:]
	var n uint64
	var err error
	switch {
	case c <= 0x7f:
		return int64(c), b, nil
	case c >= 0xe0:
		return int64(int8(c)), b, nil
	case c >= 0x80 && c <= 0x8f:
		return decodeMap(b, uint64(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return decodeArray(b, uint64(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		s, rest, err := take(b, uint64(c&0x1f))
		return string(s), rest, err
	}
	switch c {
	case 0xc0:
		return nil, b, nil
	case 0xc2:
		return false, b, nil
	case 0xc3:
		return true, b, nil
	case 0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb:
		size := map[byte]int{0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4}[c]
		if n, b, err = be(b, size); err != nil {
			return nil, nil, err
		}
		s, rest, err := take(b, n)
		if err != nil {
			return nil, nil, err
		}
		if c >= 0xd9 {
			return string(s), rest, nil
		}
		return append([]byte(nil), s...), rest, nil
	case 0xca:
		if n, b, err = be(b, 4); err != nil {
			return nil, nil, err
		}
		return float64(math.Float32frombits(uint32(n))), b, nil
	case 0xcb:
		if n, b, err = be(b, 8); err != nil {
			return nil, nil, err
		}
		return math.Float64frombits(n), b, nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		if n, b, err = be(b, 1<<(c-0xcc)); err != nil {
			return nil, nil, err
		}
		if n > math.MaxInt64 {
			return n, b, nil
		}
		return int64(n), b, nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size := 1 << (c - 0xd0)
		if n, b, err = be(b, size); err != nil {
			return nil, nil, err
		}
		shift := 64 - 8*size
		return int64(n<<shift) >> shift, b, nil
	case 0xdc, 0xdd:
		if n, b, err = be(b, 2<<(c-0xdc)); err != nil {
			return nil, nil, err
		}
		return decodeArray(b, n, depth)
	case 0xde, 0xdf:
		if n, b, err = be(b, 2<<(c-0xde)); err != nil {
			return nil, nil, err
		}
		return decodeMap(b, n, depth)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9:
		if c >= 0xd4 {
			n = 1 + (1 << (c - 0xd4))
		} else {
			var l uint64
			if l, b, err = be(b, 1<<(c-0xc7)); err != nil {
				return nil, nil, err
			}
			n = 1 + l
		}
		s, rest, err := take(b, n)
		if err != nil {
			return nil, nil, err
		}
		return append([]byte(nil), s[1:]...), rest, nil
	}
	return nil, nil, fmt.Errorf("msgpack: bad byte %#x", c)
}

func decodeArray(b []byte, n uint64, depth int) (any, []byte, error) {
	if n > uint64(len(b)) {
		return nil, nil, errShort
	}
	out := make([]any, 0, n)
	for i := uint64(0); i < n; i++ {
		v, rest, err := decode(b, depth+1)
		if err != nil {
			return nil, nil, err
		}
		out, b = append(out, v), rest
	}
	return out, b, nil
}

func decodeMap(b []byte, n uint64, depth int) (any, []byte, error) {
	if n > uint64(len(b)) {
		return nil, nil, errShort
	}
	out := make(map[string]any, n)
	for i := uint64(0); i < n; i++ {
		k, rest, err := decode(b, depth+1)
		if err != nil {
			return nil, nil, err
		}
		v, rest, err := decode(rest, depth+1)
		if err != nil {
			return nil, nil, err
		}
		key, ok := k.(string)
		if !ok {
			key = fmt.Sprint(k)
		}
		out[key], b = v, rest
	}
	return out, b, nil
}

// sortedKeys is m's keys in order, so a map encodes the same bytes every time.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
