package telemetry

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

func FuzzDecodeOTLPLogsJSON(f *testing.F) {
	js, _ := plogotlp.NewExportRequestFromLogs(sampleLogs(2)).MarshalJSON()
	f.Add(js)
	f.Add([]byte(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","body":{"stringValue":"x"},"traceId":"0102"}]}]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		logs, err := DecodeOTLPLogs(b, true, Limits{MaxAttrs: 16, MaxValueLen: 1024}, time.Unix(0, 0))
		if err != nil {
			return
		}
		for _, l := range logs {
			if len(l.Attrs) > 16 || len(l.Message) > 1024 || l.Service == "" || l.Level == "" {
				t.Fatalf("limits not enforced: %+v", l)
			}
			// Whatever is accepted must survive the WAL codec unchanged.
			e := &enc{}
			appendLogRecord(e, &l)
			back := readLogRecord(&dec{b: e.b})
			if back.Message != l.Message || back.TraceID != l.TraceID || !back.Time.Equal(l.Time) {
				t.Fatalf("codec round trip: %+v != %+v", back, l)
			}
		}
	})
}

func FuzzDecodeJSONLines(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-20T10:00:00Z","service":"a","msg":"x","status":200,"route":"/x"}` + "\n" + `{"ts":1700000000123,"level":"warn"}`))
	f.Add([]byte("\n\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		logs, err := DecodeJSONLines(b, "dflt", Limits{MaxAttrs: 8, MaxValueLen: 512, MaxBodyBytes: 1 << 16}, time.Unix(0, 0))
		if err != nil {
			return
		}
		for _, l := range logs {
			if l.Service == "" || len(l.Message) > 512 {
				t.Fatalf("bad record accepted: %+v", l)
			}
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"service=a&since=1h&level=warn&where=route%3D/x&where=status!%3D200&contains=x&limit=5",
		"trace_id=0102030405060708090a0b0c0d0e0f10&cursor=123.4", "regex=a.*b&from=2026-01-01T00:00:00Z&to=1767312000", "where=%3D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, time.Unix(1_800_000_000, 0))
		if err != nil {
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("limit %d accepted", q.Limit)
		}
		// A parsed query prints back to one that parses to the same thing.
		q2, err := ParseQuery(q.Values(), time.Unix(1_800_000_000, 0))
		if err != nil {
			t.Fatalf("Values() of an accepted query is rejected: %v (%s)", err, q.Values().Encode())
		}
		if q2.Service != q.Service || len(q2.Where) != len(q.Where) || q2.Level != q.Level || !q2.From.Equal(q.From) || !q2.To.Equal(q.To) {
			t.Fatalf("round trip changed the query: %+v vs %+v", q, q2)
		}
		l := Log{Time: time.Unix(1_700_000_000, 0), Service: "a", Level: "INFO", Message: "x"}
		_ = q.matches(&l)
	})
}

// FuzzScanFlatObject checks the hand-written scanner against encoding/json:
// whatever it accepts is valid JSON, and string values agree.
func FuzzScanFlatObject(f *testing.F) {
	f.Add([]byte(`{"a":"b","n":1.5e3,"t":true,"z":null,"o":{"x":[1,2]},"e":"\u00e9\n"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := map[string]string{}
		err := scanFlatObject(b, func(f *jsonField) error {
			// Offsets, when given, point at the same bytes.
			if f.KeyOff >= 0 && string(b[f.KeyOff:f.KeyOff+len(f.Key)]) != string(f.Key) {
				t.Fatalf("key %q: offset %d points at other bytes", f.Key, f.KeyOff)
			}
			if f.ValOff >= 0 && string(b[f.ValOff:f.ValOff+len(f.Val)]) != string(f.Val) {
				t.Fatalf("value %q: offset %d points at other bytes", f.Val, f.ValOff)
			}
			if f.IsString {
				got[string(f.Key)] = string(f.Val)
			}
			return nil
		})
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("accepted %q that encoding/json rejects: %v", b, err)
		}
		for k, v := range got {
			if s, ok := m[k].(string); ok && s != v {
				// duplicate keys: encoding/json keeps the last, so do we
				t.Fatalf("key %q: scanned %q, encoding/json %q", k, v, s)
			}
		}
	})
}
