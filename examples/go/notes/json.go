package main

// Just enough JSON, worded as the C example words it: read {"text": "..."}, write
// a string literal.

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// jsonString is s as a JSON string literal: `"` and `\` escaped, \n \r \t, other
// control characters as \u00XX, everything else as it is.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

type parser struct {
	b  []byte
	at int
}

func (j *parser) peek() (byte, bool) {
	if j.at < len(j.b) {
		return j.b[j.at], true
	}
	return 0, false
}

func (j *parser) ws() {
	for c, ok := j.peek(); ok && (c == ' ' || c == '\t' || c == '\n' || c == '\r'); c, ok = j.peek() {
		j.at++
	}
}

func (j *parser) hex4() (rune, bool) {
	if len(j.b)-j.at < 4 {
		return 0, false
	}
	var v rune
	for _, c := range j.b[j.at : j.at+4] {
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		v = v*16 + d
	}
	j.at += 4
	return v, true
}

// str reads a string, appending its bytes to out.
func (j *parser) str(out *[]byte) string {
	if c, ok := j.peek(); !ok || c != '"' {
		return "expected a string"
	}
	j.at++
	for {
		c, ok := j.peek()
		if !ok || c == '"' {
			break
		}
		j.at++
		if c < 0x20 {
			return "a control character in a string"
		}
		if c != '\\' {
			*out = append(*out, c)
			continue
		}
		e, ok := j.peek()
		if !ok {
			break
		}
		j.at++
		switch e {
		case '"', '\\', '/':
			*out = append(*out, e)
		case 'b':
			*out = append(*out, 8)
		case 'f':
			*out = append(*out, 12)
		case 'n':
			*out = append(*out, '\n')
		case 'r':
			*out = append(*out, '\r')
		case 't':
			*out = append(*out, '\t')
		case 'u':
			cp, ok := j.hex4()
			if !ok {
				return `a bad \u escape`
			}
			if cp >= 0xd800 && cp < 0xdc00 && len(j.b)-j.at >= 6 && j.b[j.at] == '\\' && j.b[j.at+1] == 'u' {
				j.at += 2
				lo, ok := j.hex4()
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return "a bad surrogate pair"
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00)
			} else if cp >= 0xd800 && cp < 0xe000 {
				return "a lone surrogate"
			}
			*out = utf8.AppendRune(*out, cp)
		default:
			return "a bad escape"
		}
	}
	if _, ok := j.peek(); !ok {
		return "an unterminated string"
	}
	j.at++
	return ""
}

// value skips any value (nesting limited).
func (j *parser) value(depth int) string {
	j.ws()
	if depth > 32 {
		return "nested too deeply"
	}
	c, ok := j.peek()
	if !ok {
		return "unexpected end"
	}
	var skip []byte
	switch {
	case c == '"':
		return j.str(&skip)
	case c == '{' || c == '[':
		close := byte(']')
		if c == '{' {
			close = '}'
		}
		j.at++
		j.ws()
		if n, ok := j.peek(); ok && n == close {
			j.at++
			return ""
		}
		for {
			if c == '{' {
				j.ws()
				if e := j.str(&skip); e != "" {
					return e
				}
				j.ws()
				if n, ok := j.peek(); !ok || n != ':' {
					return "expected :"
				}
				j.at++
			}
			if e := j.value(depth + 1); e != "" {
				return e
			}
			j.ws()
			n, ok := j.peek()
			switch {
			case ok && n == ',':
				j.at++
			case ok && n == close:
				j.at++
				return ""
			default:
				return "expected , or a closing bracket"
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		lit := map[byte]string{'t': "true", 'f': "false", 'n': "null"}[c]
		if strings.HasPrefix(string(j.b[j.at:]), lit) {
			j.at += len(lit)
			return ""
		}
		return "an unexpected word"
	case c == '-' || (c >= '0' && c <= '9'):
		for n, ok := j.peek(); ok && strings.IndexByte("+-0123456789.eE", n) >= 0; n, ok = j.peek() {
			j.at++
		}
		return ""
	}
	return "an unexpected character"
}

// readText returns the "text" string of a JSON object, or the reason there is none.
func readText(body []byte) (string, string) {
	j := &parser{b: body}
	var text []byte
	found := false
	j.ws()
	if c, ok := j.peek(); !ok || c != '{' {
		return "", "the body must be a JSON object"
	}
	j.at++
	j.ws()
	if c, ok := j.peek(); ok && c == '}' {
		j.at++
	} else {
		for {
			var key []byte
			j.ws()
			if e := j.str(&key); e != "" {
				return "", e
			}
			j.ws()
			if c, ok := j.peek(); !ok || c != ':' {
				return "", "expected : after a key"
			}
			j.at++
			j.ws()
			if string(key) == "text" {
				if c, ok := j.peek(); !ok || c != '"' {
					return "", `"text" must be a string`
				}
				text = text[:0]
				if e := j.str(&text); e != "" {
					return "", e
				}
				found = true
			} else if e := j.value(1); e != "" {
				return "", e
			}
			j.ws()
			c, ok := j.peek()
			if ok && c == ',' {
				j.at++
				continue
			}
			if ok && c == '}' {
				j.at++
				break
			}
			return "", "expected , or } in the object"
		}
	}
	j.ws()
	if j.at != len(j.b) {
		return "", "text after the JSON object"
	}
	if !found {
		return "", `the object has no "text" string`
	}
	// Raw bytes in a string were the body's own: keep them if they are UTF-8.
	if !utf8.Valid(text) {
		return "", "a string that is not UTF-8"
	}
	return string(text), ""
}
