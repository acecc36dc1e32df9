package telemetry

import (
	"encoding/json"
	"testing"
)

func TestAttrsKeepOrderAndLastDuplicateWins(t *testing.T) {
	logs, err := DecodeJSONLines([]byte(`{"service":"s","z":"1","a":"2","z":"3","n":4.5,"o":{"x":1}}`+"\n"), "", Limits{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Attrs{{"z", "3"}, {"a", "2"}, {"n", "4.5"}, {"o", `{"x":1}`}}
	got := logs[0].Attrs
	if len(got) != len(want) {
		t.Fatalf("attrs %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("attrs %v, want %v", got, want)
		}
	}
	got.SetIfAbsent("a", "ignored")
	got.SetIfAbsent("b", "added")
	if v, _ := got.Get("a"); v != "2" {
		t.Fatalf("SetIfAbsent replaced a: %q", v)
	}
	if v, ok := got.Get("b"); !ok || v != "added" {
		t.Fatalf("SetIfAbsent did not add b: %q %v", v, ok)
	}
}

func TestAttrsJSONIsAnObject(t *testing.T) {
	a := Attrs{{"psp", "acme"}, {"attempt", "2"}}
	b, err := json.Marshal(Log{Service: "s", Attrs: a})
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Attrs map[string]string `json:"attrs"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.Attrs["psp"] != "acme" || raw.Attrs["attempt"] != "2" {
		t.Fatalf("attrs as JSON: %s (%v)", b, err)
	}
	var back Log
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// Decoded attributes come sorted by key.
	if len(back.Attrs) != 2 || back.Attrs[0] != (Attr{"attempt", "2"}) || back.Attrs[1] != (Attr{"psp", "acme"}) {
		t.Fatalf("round trip: %v", back.Attrs)
	}
	if b, _ := json.Marshal(Log{Service: "s"}); string(b) != `{"time":"0001-01-01T00:00:00Z","service":"s","level":"","message":""}` {
		t.Fatalf("empty attrs are not omitted: %s", b)
	}
}
