package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func benchLines(n int) []byte { return benchLinesFrom(0, n) }

func benchLinesFrom(from, n int) []byte {
	var b bytes.Buffer
	for i := from; i < from+n; i++ {
		t := t0.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		if i%3 == 0 {
			fmt.Fprintf(&b, `{"time":"%s","trace_id":"%032x","span_id":"%016x","service":"orders","version":"v1","method":"GET","route":"/v1/orders/{id}","status":200,"duration_ms":%.3f,"bytes":%d,"caller":"web","cluster":"east","datacenter":"dc1","merchant_id":"m%05d"}`+"\n",
				t, i*7919, i, float64(i%100)/7, i%5000, i%20000)
		} else {
			fmt.Fprintf(&b, `{"time":"%s","level":"INFO","msg":"charge authorized","service":"payments","version":"v2","trace_id":"%032x","span_id":"%016x","attempt":%d,"psp":"acme","amount":%d}`+"\n",
				t, i*7919, i, i%3, i%100000)
		}
	}
	return b.Bytes()
}

// BenchmarkIngestJSONLines is the intake path of the benchmark: decode,
// WAL with fsync, memory table, and the block flush, per line.
func BenchmarkIngestJSONLines(b *testing.B) {
	s, err := Open(context.Background(), Options{Dir: b.TempDir(), FlushInterval: time.Hour, MaintainEvery: -1, ColdAfter: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := NewIntake(s, Limits{}, nil)
	body := benchLines(2000)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/v1/jsonlines", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
		if i%10 == 9 {
			s.Flush(context.Background())
		}
	}
	b.ReportMetric(float64(b.N*2000)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkTraceLookupHot(b *testing.B) {
	s, err := Open(context.Background(), Options{Dir: b.TempDir(), FlushInterval: time.Hour, MaintainEvery: -1, ColdAfter: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := NewIntake(s, Limits{}, nil)
	for part := 0; part < 5; part++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/jsonlines", bytes.NewReader(benchLinesFrom(part*20000, 20000))))
		if rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Trace(context.Background(), fmt.Sprintf("%032x", (i%90000)*7919))
		if err != nil || len(res.Logs) != 1 {
			b.Fatal(err, len(res.Logs))
		}
	}
	b.ReportMetric(float64(s.Stats().HotBytes)/100000, "disk-bytes/line")
}

// BenchmarkTraceLookupColdBlob looks up traces whose blocks were moved to
// the blob store, with the local cache emptied before each lookup.
func BenchmarkTraceLookupColdBlob(b *testing.B) {
	dir := b.TempDir()
	now := t0
	s, err := Open(context.Background(), Options{Dir: filepath.Join(dir, "store"), Blob: DirBlob{Root: filepath.Join(dir, "blob")},
		FlushInterval: time.Hour, MaintainEvery: -1, ColdAfter: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := NewIntake(s, Limits{}, nil)
	const lines = 100000
	for part := 0; part < 5; part++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/jsonlines", bytes.NewReader(benchLinesFrom(part*lines/5, lines/5))))
		if rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	now = t0.Add(24 * time.Hour)
	if err := s.MoveCold(context.Background()); err != nil || s.Stats().HotBlocks != 0 {
		b.Fatal(err, s.Stats())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.RemoveAll(filepath.Join(dir, "store", "cache")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n := (i * 7717) % lines // spread over the blocks
		res, err := s.Trace(context.Background(), fmt.Sprintf("%032x", n*7919))
		if err != nil || len(res.Logs) != 1 {
			b.Fatal(err, len(res.Logs), res.Warnings)
		}
	}
}

// BenchmarkFieldFilterHot is the benchmark's status=500 AND service=S
// page of 1000 lines, over 200,000 lines of 5 services (1 in 7 is a 500)
// in compacted blocks.
func BenchmarkFieldFilterHot(b *testing.B) {
	s, err := Open(context.Background(), Options{Dir: b.TempDir(), FlushInterval: time.Hour, MaintainEvery: -1, ColdAfter: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	services := []string{"orders", "payments", "ledger", "risk", "search"}
	var logs []Log
	for i := 0; i < 200_000; i++ {
		logs = append(logs, Log{Time: t0.Add(time.Duration(i) * 50 * time.Millisecond), Service: services[i%5], Version: "v1", Method: "GET",
			Route: "/v1/orders/{id}", Status: []int{200, 200, 200, 200, 201, 404, 500}[(i/5)%7], DurationMS: float64(i%100) / 7, Bytes: int64(i % 5000),
			TraceID: fmt.Sprintf("%032x", i*7919), SpanID: fmt.Sprintf("%016x", i), Caller: "web", Cluster: "east", Datacenter: "dc1", MerchantID: fmt.Sprintf("m%05d", i%20000)})
		if len(logs) == 20_000 {
			if err := s.AppendLogs(context.Background(), logs); err != nil {
				b.Fatal(err)
			}
			logs = logs[:0]
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Compact(context.Background()); err != nil {
		b.Fatal(err)
	}
	q := Query{Service: "orders", Where: []Match{{Key: "status", Value: "500"}}, Limit: 1000}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Query(context.Background(), q)
		if err != nil || len(res.Logs) != 1000 {
			b.Fatal(err, len(res.Logs))
		}
	}
}
