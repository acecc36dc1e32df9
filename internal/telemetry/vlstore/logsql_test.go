package vlstore

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// skeleton replaces every double-quoted literal of a LogsQL query by S,
// checking that each is a well-formed literal, and returns the rest and
// the literals' decoded values.
func skeleton(t *testing.T, q string) (string, []string) {
	t.Helper()
	var sk strings.Builder
	var vals []string
	for i := 0; i < len(q); i++ {
		if q[i] != '"' {
			sk.WriteByte(q[i])
			continue
		}
		j := i + 1
		for ; j < len(q) && q[j] != '"'; j++ {
			if q[j] == '\\' {
				j++
			}
		}
		if j >= len(q) {
			t.Fatalf("unterminated literal in %s", q)
		}
		v, err := strconv.Unquote(q[i : j+1])
		if err != nil {
			t.Fatalf("literal %s in %s: %v", q[i:j+1], q, err)
		}
		vals = append(vals, v)
		sk.WriteString("S")
		i = j
	}
	return sk.String(), vals
}

// Whatever a user types, it stays inside its literal: the query has the
// shape the same filters with harmless values give, and each literal
// decodes to the very value given.
func FuzzLogsQLQuotesEveryValue(f *testing.F) {
	f.Add("orders", "route", "/v1/pay", "timeout", "psp (timeout|refused)", false)
	f.Add(`a" OR *`, `k" | limit 1 #`, "\"\\\n`'", `*"|x`, `"|.*`, true)
	f.Add("\xff\xfe", "é", "\x00", "\\", "", false)
	f.Fuzz(func(t *testing.T, service, key, value, contains, re string, not bool) {
		rx, err := regexp.Compile(re)
		if err != nil {
			return
		}
		build := func(service, key, value, contains string, rx *regexp.Regexp) *telemetry.Query {
			q := &telemetry.Query{Service: service, Contains: contains, Regex: rx, Level: "WARN",
				From: time.Unix(1, 5), To: time.Unix(100, 0)}
			if key != "" {
				q.Where = []telemetry.Match{{Key: key, Value: value, Not: not}}
			}
			return q
		}
		q := build(service, key, value, contains, rx)
		safe := func(s string) string {
			if s == "" {
				return ""
			}
			return "x"
		}
		safeKey := "x"
		if key == "message" {
			safeKey = "message"
		} else if column(key) == key {
			safeKey = "route"
		}
		if key == "" {
			safeKey = ""
		}
		safeRe := regexp.MustCompile("x")
		if rx.MatchString("") {
			safeRe = regexp.MustCompile("x*")
		}
		want := build(safe(service), safeKey, safe(value), safe(contains), safeRe)
		for _, pair := range [][2]string{
			{logsQuery(q, 123, 2, 10), logsQuery(want, 123, 2, 10)},
			{countQuery(q, key), countQuery(want, safeKey)},
		} {
			got, vals := skeleton(t, pair[0])
			shape, safeVals := skeleton(t, pair[1])
			if got != shape || len(vals) != len(safeVals) {
				t.Fatalf("query shape changed by the input:\n got %s\nwant %s\nquery %s", got, shape, pair[0])
			}
			// Each literal is its harmless twin with the "x" standing for
			// one input put back.
			inputs := []string{service, key, value, contains, re}
			for i, v := range vals {
				if v == safeVals[i] || safeVals[i] == "x*" && v == re {
					continue
				}
				prefix, ok := strings.CutSuffix(safeVals[i], "x")
				if !ok || !slices.ContainsFunc(inputs, func(in string) bool { return prefix+in == v }) {
					t.Fatalf("literal %q (in place of %q) is none of the inputs", v, safeVals[i])
				}
			}
		}
	})
}

func TestLogsQLOfAQuery(t *testing.T) {
	q, err := telemetry.ParseQuery(map[string][]string{"service": {"orders"}, "level": {"warn"}, "where": {"route=/v1/pay", "status!=200", "psp="},
		"contains": {`a"b`}, "from": {"2026-11-20T10:00:00Z"}, "to": {"2026-11-20T11:00:00Z"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := logsQuery(&q, -1, 0, 100)
	want := `{pave_type="log"} AND _time:[2026-11-20T10:00:00Z, 2026-11-20T11:00:00Z) AND service:="orders" AND pave_rank:>=4 AND ` +
		`"route":="/v1/pay" AND NOT "status":="200" AND "a.psp":="" AND ("pave_nomsg":="" AND _msg:*"a\"b"* OR "a."*:*"a\"b"*)` +
		` | sort by (_time desc, service, span_id, _msg, pave_id) | limit 101`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParseURL(t *testing.T) {
	o, err := ParseURL("victorialogs://vl-1:9428,10.0.0.2:9428?flush-interval=1s")
	if err != nil || len(o.Addrs) != 2 || o.Addrs[1] != "10.0.0.2:9428" || o.FlushInterval != time.Second {
		t.Fatalf("%+v %v", o, err)
	}
	if o, err := ParseURL("victorialogs://vl:9428?flush-interval=0"); err != nil || o.FlushInterval >= 0 {
		t.Fatalf("flush-interval=0: %+v %v", o, err)
	}
	for _, bad := range []string{"vl:9428", "victorialogs://", "victorialogs://vl", "victorialogs://vl:9428,", "victorialogs://u:p@vl:9428",
		"victorialogs://vl:9428/path", "victorialogs://vl:9428?flush=1s", "victorialogs://vl:9428?flush-interval=soon"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRecordsAreValidJSON(t *testing.T) {
	l := telemetry.Log{Time: time.Unix(1, 2), Service: "s\"\\", Level: "warning", Message: "m\n\x01\xff",
		Attrs: telemetry.Attrs{{Key: "k\"", Value: "v\t🚀"}, {Key: "empty", Value: ""}}, Status: 500, DurationMS: 0.1}
	b := appendLog(nil, &l, "b1", 3)
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m["service"] != l.Service || m["_msg"] != "m\n\x01\ufffd" || m[`a.k"`] != "v\t🚀" || m["pave_rank"] != "4" ||
		m["status"] != "500" || m["duration_ms"] != "0.1" || m["pave_id"] != "b1-3" || m["_time"] != "1970-01-01T00:00:01.000000002Z" {
		t.Fatalf("%v", m)
	}
	if _, ok := m["a.empty"]; ok {
		t.Fatal("empty attribute stored")
	}
}
