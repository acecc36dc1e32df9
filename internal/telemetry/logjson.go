package telemetry

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends a log line as encoding/json writes the struct (same
// fields, order, omissions and escaping, byte for byte), several times
// faster: encoding a page of 1000 lines by reflection cost more CPU than
// finding them. With prefix "" it is compact, as json.Marshal; otherwise
// indented by two spaces after prefix, as an Encoder with SetIndent(prefix
// "", "  ") writes it at that depth. Values its fast paths do not cover (a
// string needing escapes, a time outside UTC or years 0–9999, a float
// outside [1e-6, 1e21)) go through encoding/json itself.
func (l *Log) AppendJSON(b []byte, prefix string) ([]byte, error) {
	var err error
	sep := ","
	if prefix != "" {
		sep = ",\n" + prefix + "  "
	}
	field := func(key string) {
		b = append(b, sep...)
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		if prefix != "" {
			b = append(b, ' ')
		}
	}
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		field(key)
		b = appendJSONString(b, v)
	}
	b = append(b, '{')
	if prefix != "" {
		b = append(b, sep[1:]...)
		b = append(b, `"time": `...)
	} else {
		b = append(b, `"time":`...)
	}
	if b, err = appendJSONTime(b, l.Time); err != nil {
		return nil, err
	}
	str("service", l.Service, false)
	str("version", l.Version, true)
	str("level", l.Level, false)
	str("message", l.Message, false)
	str("kind", l.Kind, true)
	str("trace_id", l.TraceID, true)
	str("span_id", l.SpanID, true)
	str("method", l.Method, true)
	str("route", l.Route, true)
	if l.Status != 0 {
		field("status")
		b = strconv.AppendInt(b, int64(l.Status), 10)
	}
	if l.DurationMS != 0 {
		field("duration_ms")
		if b, err = appendJSONFloat(b, l.DurationMS); err != nil {
			return nil, err
		}
	}
	if l.Bytes != 0 {
		field("bytes")
		b = strconv.AppendInt(b, l.Bytes, 10)
	}
	str("caller", l.Caller, true)
	str("cluster", l.Cluster, true)
	str("datacenter", l.Datacenter, true)
	str("merchant_id", l.MerchantID, true)
	if len(l.Attrs) > 0 {
		field("attrs")
		b = append(b, '{')
		for i, kv := range l.Attrs.Sorted() {
			if i > 0 {
				b = append(b, ',')
			}
			if prefix != "" {
				b = append(b, "\n"+prefix+"    "...)
			}
			b = appendJSONString(b, kv.Key)
			b = append(b, ':')
			if prefix != "" {
				b = append(b, ' ')
			}
			b = appendJSONString(b, kv.Value)
		}
		if prefix != "" {
			b = append(b, "\n"+prefix+"  "...)
		}
		b = append(b, '}')
	}
	if prefix != "" {
		b = append(b, '\n')
		b = append(b, prefix...)
	}
	return append(b, '}'), nil
}

// AppendJSONString appends s quoted as encoding/json quotes it.
func AppendJSONString(b []byte, s string) []byte { return appendJSONString(b, s) }

// appendJSONString quotes s; a string with a byte encoding/json escapes
// (quote, backslash, control, <, >, &, non-ASCII) is quoted by it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); t.Location() == time.UTC && y >= 0 && y <= 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	}
	q, err := t.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, q...), nil
}

func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64), nil
	}
	q, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, q...), nil
}
