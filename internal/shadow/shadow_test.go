package shadow

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
)

func answer(status int, body string, hdr ...string) *Answer {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	return &Answer{Status: status, Header: h, Body: []byte(body), Digest: sha256.Sum256([]byte(body))}
}

func paths(ds []Difference) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Path+"="+d.A+"|"+d.B)
	}
	return strings.Join(out, " ")
}

func TestCompareJSONFieldByField(t *testing.T) {
	a := answer(200, `{"amount":"10.00","fee":1,"items":[{"id":1},{"id":2}],"at":"x","odd key":true}`, "X-Request-Id", "a", "Content-Type", "application/json")
	b := answer(200, `{"amount":"10.10","fee":1,"items":[{"id":1},{"id":3},{"id":4}],"at":"y","odd key":true,"new":null}`, "X-Request-Id", "b", "Content-Type", "application/json")
	got := paths(Compare(a, b, Options{IgnoreHeaders: []string{"x-request-id"}}))
	want := `$.amount="10.00"|"10.10" $.at="x"|"y" $.items[1].id=2|3 $.items[2]=(absent)|{"id":4} $.new=(absent)|null`
	if got != want {
		t.Fatalf("differences:\n got %s\nwant %s", got, want)
	}
	got = paths(Compare(a, b, Options{}))
	if !strings.Contains(got, "header:X-Request-Id=a|b") {
		t.Fatalf("a header not ignored must be compared: %s", got)
	}
	// 10.10 and 10.1 are the same number but not the same amount as written.
	if d := Compare(answer(200, `{"n":10.10}`), answer(200, `{"n":10.1}`), Options{}); len(d) != 1 || d[0].Path != "$.n" {
		t.Fatalf("numbers compare as written: %v", d)
	}
}

func TestCompareStatusTextAndFailures(t *testing.T) {
	if d := Compare(answer(200, "ok"), answer(500, "boom"), Options{}); len(d) != 1 || d[0].Path != StatusPath {
		t.Fatalf("a status change is one difference (the body of another status says nothing more): %v", d)
	}
	if d := Compare(answer(200, "hello"), answer(200, "hullo"), Options{}); len(d) != 1 || d[0].Path != "$" {
		t.Fatalf("text bodies compare whole: %v", d)
	}
	failed := &Answer{Err: "connection refused"}
	if d := Compare(answer(200, "x"), failed, Options{}); len(d) != 1 || !strings.Contains(d[0].B, "connection refused") {
		t.Fatalf("no answer: %v", d)
	}
	big := answer(200, "same")
	big.Truncated = true
	big2 := answer(200, "same")
	big2.Truncated = true
	if d := Compare(big, big2, Options{}); len(d) != 0 {
		t.Fatalf("equal digests of cut bodies are equal: %v", d)
	}
}

func TestParsePathAndMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		match         bool
	}{
		{"$.fee", "$.fee", true},
		{"$.fee", "$.fees", false},
		{"$.items[*].price", "$.items[3].price", true},
		{"$.items[1].price", "$.items[3].price", false},
		{"$.*", "$.anything", true},
		{"$['odd key']", "$['odd key']", true},
		{"$['a]b']", "$['a]b']", true},
		{"status", "status", true},
		{"header:x-request-id", "header:X-Request-Id", true},
		{"$.fee", "status", false},
	} {
		p, err := ParsePath(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := p.Match(c.path); got != c.match {
			t.Errorf("%s matches %s: %v, want %v", c.pattern, c.path, got, c.match)
		}
	}
	for _, bad := range []string{"", "fee", "$.", "$..fee", "$[", "$[x]", "$[-1]", "$[01]", "$['a", "header:", "$.a[0"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// TestRecorderLearnsNoise: a field the two stables differ in as often as
// stable and canary do is noise; a field only the canary changes is
// counted canary-only with an example; an expected change is apart.
func TestRecorderLearnsNoise(t *testing.T) {
	r, err := NewRecorder(Options{}, []ExpectedChange{{Route: "/v1/pay", Path: "$.fee"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		ts := func(k int) string { return `"t` + itoa(i*3+k) + `"` }
		amount := `"10.00"`
		if i%10 == 0 {
			amount = `"10.50"`
		}
		p := answer(200, `{"at":`+ts(0)+`,"amount":"10.00","fee":1}`)
		s := answer(200, `{"at":`+ts(1)+`,"amount":"10.00","fee":1}`)
		c := answer(200, `{"at":`+ts(2)+`,"amount":`+amount+`,"fee":2}`)
		r.Record("POST /v1/pay", "trace"+itoa(i), p, s, c)
	}
	snap := r.Snapshot()
	at, amount, fee := snap.Fields["POST /v1/pay $.at"], snap.Fields["POST /v1/pay $.amount"], snap.Fields["POST /v1/pay $.fee"]
	if at.Both != 100 || at.CanaryOnly != 0 {
		t.Errorf("timestamp: %+v, want 100 differing in all three", at)
	}
	if amount.CanaryOnly != 10 || amount.StableOnly != 0 || amount.Example == nil || amount.Example.TraceID != "trace90" || amount.Example.Canary != `"10.50"` {
		t.Errorf("amount: %+v", amount)
	}
	if fee.Expected != 100 || fee.CanaryOnly != 0 {
		t.Errorf("expected change: %+v", fee)
	}
	if snap.Exchanges != 100 || snap.Canary.Total.Requests != 100 || snap.Stable.Routes["POST /v1/pay"].Requests != 100 {
		t.Errorf("counts: %+v", snap)
	}
	w := r.Snapshot().Sub(snap)
	if len(w.Fields) != 0 || w.Exchanges != 0 {
		t.Errorf("an empty window: %+v", w)
	}
}

func TestSettings(t *testing.T) {
	s := Settings{SafeRoutes: []string{"POST /v1/quote"}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, route, path string
		want                bool
	}{
		{"GET", "/v1", "/v1/x", true},
		{"HEAD", "/v1", "/v1/x", true},
		{"POST", "POST /v1/pay", "/v1/pay", false},
		{"POST", "POST /v1/quote", "/v1/quote", true},
		{"POST", "/v1", "/v1/quote", true},
		{"PUT", "/v1", "/v1/quote", false},
	} {
		if got := Mirrorable(c.method, c.route, c.path, s.SafeRoutes); got != c.want {
			t.Errorf("%s %s (%s): %v, want %v", c.method, c.path, c.route, got, c.want)
		}
	}
	for _, bad := range []Settings{
		{SafeRoutes: []string{"post /x"}},
		{SafeRoutes: []string{"POST x"}},
		{IgnoreHeaders: []string{"a b"}},
		{ExpectedChanges: []ExpectedChange{{Path: "fee"}}},
	} {
		err := bad.Validate()
		var fe *FieldError
		if err == nil || !asField(err, &fe) {
			t.Errorf("%+v: %v, want a field error", bad, err)
		}
	}
}

func asField(err error, fe **FieldError) bool {
	f, ok := err.(*FieldError)
	*fe = f
	return ok
}
