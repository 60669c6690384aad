package telemetry

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Envelopes and audit lines are appended by hand rather than with encoding/json: their shape is
// fixed and small, and json.Marshal of the property maps (reflection, sorting, one allocation per
// value) was the largest cost of recording an outcome. FuzzAppendString holds appendString to
// encoding/json's exact output.

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes appendString copies as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string exactly as encoding/json writes it: HTML-safe (<, >, &
// escaped), U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json does; NaN and infinities, which JSON cannot carry and
// no measurement should be, become 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendMember appends "key":"val" after a comma unless it opens the object.
func appendMember(b []byte, key, val string) []byte {
	b = appendKey(b, key)
	return appendString(b, val)
}

// appendKey appends "key": after a comma unless it opens the object.
func appendKey(b []byte, key string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' {
		b = append(b, ',')
	}
	b = appendString(b, key)
	return append(b, ':')
}

// appendFields appends the fields as members of the open object, in order.
func appendFields(b []byte, fields []field) []byte {
	for _, f := range fields {
		b = appendMember(b, f.key, f.val)
	}
	return b
}

// appendMeasures appends the measurements as members of the open object, in order.
func appendMeasures(b []byte, meas []measure) []byte {
	for _, m := range meas {
		b = appendKey(b, m.key)
		b = appendFloat(b, m.val)
	}
	return b
}

// appendObject appends "key":{fields…}, or nothing when there are no fields (omitempty).
func appendObject(b []byte, key string, fields []field) []byte {
	if len(fields) == 0 {
		return b
	}
	b = appendKey(b, key)
	b = append(b, '{')
	return append(appendFields(b, fields), '}')
}

// appendTime appends t in RFC 3339 with nanoseconds, quoted.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
