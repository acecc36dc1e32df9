package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// jsonField is one key and value of a flat object. KeyOff and ValOff are
// where Key and Val lie in the scanned text, or -1 when unescaping made a
// copy: a caller holding the text as a string takes substrings of it
// instead of allocating one string per value.
type jsonField struct {
	Key, Val       []byte
	KeyOff, ValOff int
	IsString       bool
}

// scanFlatObject walks one JSON object without building a map: fn gets
// each key and value. String values are unquoted; numbers, booleans and
// null come as their text; nested objects and arrays come as their raw
// JSON text. Log shippers write flat objects, and decoding them through
// encoding/json's map[string]any cost half of the intake's CPU. The field
// is valid only during the call.
func scanFlatObject(b []byte, fn func(f *jsonField) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	var scratch, vscratch []byte
	var f jsonField
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("offset %d: want a string key", i)
		}
		key, off, next, err := scanString(b, i, &scratch)
		if err != nil {
			return err
		}
		// The key stays valid while its value is scanned: a value's
		// unescaping uses its own scratch.
		k := key
		f.Key, f.KeyOff = key, off
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("offset %d: want ':' after key %q", i, k)
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return fmt.Errorf("key %q: value missing", k)
		}
		switch c := b[i]; {
		case c == '"':
			v, off, next, err := scanString(b, i, &vscratch)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			f.Val, f.ValOff, f.IsString = v, off, true
			if err := fn(&f); err != nil {
				return err
			}
			i = next
		case c == '{' || c == '[':
			end, err := skipComposite(b, i)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			f.Val, f.ValOff, f.IsString = b[i:end], i, false
			if err := fn(&f); err != nil {
				return err
			}
			i = end
		default:
			j := i
			for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
				j++
			}
			lit := b[i:j]
			if !validLiteral(lit) {
				return fmt.Errorf("key %q: %q is not a JSON value", k, lit)
			}
			f.Val, f.ValOff, f.IsString = lit, i, false
			if err := fn(&f); err != nil {
				return err
			}
			i = j
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return errors.New("unterminated object")
		}
		if b[i] == '}' {
			return trailing(b, i+1)
		}
		if b[i] != ',' {
			return fmt.Errorf("offset %d: want ',' or '}'", i)
		}
		i = skipSpace(b, i+1)
	}
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return fmt.Errorf("offset %d: text after the object", i)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanString returns the unquoted string starting at b[i] == '"', its
// offset in b (-1 when unescaping copied it into scratch, valid until the
// next use of scratch) and the offset after its closing quote.
func scanString(b []byte, i int, scratch *[]byte) ([]byte, int, int, error) {
	j := i + 1
	ascii := true
	for j < len(b) {
		c := b[j]
		if c == '"' {
			s := b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, 0, errors.New("string is not valid UTF-8")
			}
			return s, i + 1, j + 1, nil
		}
		if c >= 0x80 {
			ascii = false
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, 0, 0, errors.New("control character in string")
		}
		j++
	}
	// Escapes: find the end, then let encoding/json unquote it.
	for j < len(b) {
		if b[j] == '\\' {
			j += 2
			continue
		}
		if b[j] == '"' {
			var s string
			if err := json.Unmarshal(b[i:j+1], &s); err != nil {
				return nil, 0, 0, err
			}
			*scratch = append((*scratch)[:0], s...)
			return *scratch, -1, j + 1, nil
		}
		j++
	}
	return nil, 0, 0, errors.New("unterminated string")
}

func skipComposite(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			var scratch []byte
			_, _, next, err := scanString(b, j, &scratch)
			if err != nil {
				return 0, err
			}
			j = next - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				if !json.Valid(b[i : j+1]) {
					return 0, errors.New("invalid nested JSON")
				}
				return j + 1, nil
			}
		}
	}
	return 0, errors.New("unterminated object or array")
}

func validLiteral(lit []byte) bool {
	switch string(lit) {
	case "true", "false", "null":
		return true
	}
	return validNumber(lit)
}

// validNumber follows JSON's number grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}
