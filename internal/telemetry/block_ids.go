package telemetry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// idWidth is the width of a column's raw ids, or 0 for a column that holds
// no ids.
func idWidth(column string) int {
	switch column {
	case "trace":
		return 16
	case "span", "parent":
		return 8
	}
	return 0
}

// Id flags, one per row (the row layout of format 1 and of putID).
const (
	idString = 0 // not canonical hex: a length-prefixed string follows
	idRaw    = 1 // n raw bytes follow
	idSame   = 2 // format 2 only: the previous row's raw id again
)

// splitIDs turns an id column from the row layout putID writes (a flag
// before every id) into format 2:
//
//	uvarint rows | one flag per row | raw ids of the idRaw rows | strings of the idString rows
//
// Ids are random bytes that zstd cannot shrink; interleaved flags cost a
// byte per id inside them, while grouped they compress to almost nothing.
// A row repeating the previous row's id (the lines of one request, sorted
// together) stores nothing but its flag.
func splitIDs(rows []byte, count, n int) []byte {
	flags := make([]byte, 0, count)
	raw := make([]byte, 0, count*n)
	var strs []byte
	var prev []byte
	d := dec{b: rows}
	for len(d.b) > 0 && d.err == nil {
		flag := d.b[0]
		d.b = d.b[1:]
		if flag != idString {
			if len(d.b) < n {
				break
			}
			id := d.b[:n]
			d.b = d.b[n:]
			if prev != nil && string(id) == string(prev) {
				flags = append(flags, idSame)
			} else {
				flags = append(flags, idRaw)
				raw = append(raw, id...)
			}
			prev = id
			continue
		}
		start := len(d.b)
		l := d.uvarint()
		if d.err != nil || l > uint64(len(d.b)) {
			break
		}
		hdr := start - len(d.b)
		strs = append(strs, rows[len(rows)-start:len(rows)-start+hdr+int(l)]...)
		d.b = d.b[l:]
		flags = append(flags, idString)
		prev = nil
	}
	out := binary.AppendUvarint(make([]byte, 0, 10+len(flags)+len(raw)+len(strs)), uint64(len(flags)))
	out = append(out, flags...)
	out = append(out, raw...)
	return append(out, strs...)
}

var errIDColumn = errors.New("id column does not add up")

// joinIDs turns a format 2 id column back into the row layout the column
// readers (getID, idEquals, skipID) walk. Every byte must be accounted for.
func joinIDs(col []byte, n int) ([]byte, error) {
	return joinIDsTo(nil, col, n)
}

// joinIDsTo is joinIDs appending to dst's storage.
func joinIDsTo(dst, col []byte, n int) ([]byte, error) {
	d := dec{b: col}
	rows := d.uvarint()
	if d.err != nil || rows > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: row count", errIDColumn)
	}
	flags := d.b[:rows]
	rest := d.b[rows:]
	raws := 0
	for _, f := range flags {
		if f == idRaw {
			raws++
		}
	}
	if raws*n > len(rest) {
		return nil, fmt.Errorf("%w: %d raw ids, %d bytes", errIDColumn, raws, len(rest))
	}
	raw, strs := rest[:raws*n], dec{b: rest[raws*n:]}
	out := slices.Grow(dst[:0], len(flags)*(n+1))
	var prev []byte
	for i, f := range flags {
		switch f {
		case idRaw:
			prev, raw = raw[:n], raw[n:]
			out = append(append(out, idRaw), prev...)
		case idSame:
			if prev == nil {
				return nil, fmt.Errorf("%w: row %d repeats no id", errIDColumn, i)
			}
			out = append(append(out, idRaw), prev...)
		case idString:
			start := len(strs.b)
			l := strs.uvarint()
			if strs.err != nil || l > uint64(len(strs.b)) {
				return nil, fmt.Errorf("%w: row %d: string beyond the end", errIDColumn, i)
			}
			hdr := start - len(strs.b)
			whole := rest[len(rest)-start : len(rest)-start+hdr+int(l)]
			strs.b = strs.b[l:]
			out = append(append(out, idString), whole...)
			prev = nil
		default:
			return nil, fmt.Errorf("%w: row %d: unknown flag %d", errIDColumn, i, f)
		}
	}
	if len(strs.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", errIDColumn, len(strs.b))
	}
	return out, nil
}
