package telemetry

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// plainLog is Log without its MarshalJSON: what encoding/json writes by
// reflection.
type plainLog Log

func reflected(l *Log) ([]byte, error) { return json.Marshal((*plainLog)(l)) }

var jsonEdgeStrings = []string{"", "orders", `quote " and \ back`, "<b>&amp;</b>", "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "héllo wörld", "\u2028\u2029", "bad \xff utf8", "emoji 🙂"}

func randomJSONLog(r *rand.Rand) Log {
	s := func() string {
		if r.IntN(3) == 0 {
			return jsonEdgeStrings[r.IntN(len(jsonEdgeStrings))]
		}
		return ""
	}
	floats := []float64{0, 1, 0.125, 12.345, 1e-7, 3e-6, 1e20, 1e21, 5e22, -2.5, 1234567.891}
	l := Log{Time: time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC(), Service: s(), Version: s(), Level: s(), Message: s(), Kind: s(),
		TraceID: s(), SpanID: s(), Method: s(), Route: s(), Status: []int{0, 200, 500, -1}[r.IntN(4)],
		DurationMS: floats[r.IntN(len(floats))], Bytes: []int64{0, 1, -7, math.MaxInt64}[r.IntN(4)],
		Caller: s(), Cluster: s(), Datacenter: s(), MerchantID: s()}
	switch r.IntN(4) {
	case 0:
		l.Time = l.Time.In(time.FixedZone("x", 3600))
	case 1:
		l.Attrs = Attrs{}
	}
	for range r.IntN(4) {
		l.Attrs.Set(jsonEdgeStrings[r.IntN(len(jsonEdgeStrings))]+"k", s())
	}
	return l
}

// TestLogJSONIsEncodingJSONs: the hand-written encoding is byte for byte
// what encoding/json writes by reflection, escapes and omissions included.
func TestLogJSONIsEncodingJSONs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	for n := 0; n < 20000; n++ {
		l := randomJSONLog(r)
		want, werr := reflected(&l)
		got, gerr := l.AppendJSON(nil, "")
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%#v:\n got %s (%v)\nwant %s (%v)", l, got, gerr, want, werr)
		}
		if werr != nil {
			continue
		}
		// Indented at the depth of a page's lines, as an Encoder with
		// SetIndent("", "  ") writes []Log.
		var wantIn bytes.Buffer
		enc := json.NewEncoder(&wantIn)
		enc.SetIndent("", "  ")
		enc.Encode([]plainLog{plainLog(l)})
		gotIn, _ := l.AppendJSON([]byte("[\n  "), "  ")
		gotIn = append(gotIn, "\n]\n"...)
		if !bytes.Equal(gotIn, wantIn.Bytes()) {
			t.Fatalf("%#v indented:\n got %s\nwant %s", l, gotIn, wantIn.Bytes())
		}
	}
	// Out of the fast paths: a year past 9999 fails as it does by
	// reflection, NaN too.
	for _, l := range []Log{{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, {DurationMS: math.NaN()}} {
		if _, err := l.AppendJSON(nil, ""); err == nil {
			t.Errorf("%#v: marshalled, want the error encoding/json gives", l)
		}
	}
}

func FuzzLogJSON(f *testing.F) {
	f.Add("orders", "msg <x>", "k", "v\x00", 12.5, int64(1700000000))
	f.Fuzz(func(t *testing.T, svc, msg, k, v string, d float64, sec int64) {
		l := Log{Time: time.Unix(sec%(1<<34), 0).UTC(), Service: svc, Message: msg, DurationMS: d, Attrs: Attrs{{k, v}}}
		want, werr := reflected(&l)
		got, gerr := l.AppendJSON(nil, "")
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
	})
}

func BenchmarkLogJSON(b *testing.B) {
	l := Log{Time: time.Now().UTC(), Service: "orders", Version: "v2", Level: "INFO", Message: "served", Kind: "access", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		SpanID: "00000000000000a1", Method: "GET", Route: "/v1/orders/{id}", Status: 200, DurationMS: 12.345, Bytes: 1234, Caller: "web", Cluster: "east", Datacenter: "dc1", MerchantID: "m00042"}
	b.Run("hand", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = l.AppendJSON(buf[:0], "")
		}
	})
	b.Run("reflect", func(b *testing.B) {
		for b.Loop() {
			reflected(&l)
		}
	})
}
