package fieldpath

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type level int

func (l *level) UnmarshalJSON(b []byte) error {
	if string(b) != `"low"` && string(b) != `"high"` {
		return errors.New("want low or high")
	}
	return nil
}

type Inner struct {
	Level level `json:"level"`
}

type Embedded struct {
	Owner string `json:"owner"`
}

type doc struct {
	Embedded
	Name   string           `json:"name"`
	Items  []Inner          `json:"items"`
	ByName map[string]Inner `json:"byName"`
	Plain  string
	hidden string
}

func TestCheckNamesThePath(t *testing.T) {
	for _, c := range []struct{ in, path, msg string }{
		{`{"name":"a","owner":"b","Plain":"c","items":[{"level":"low"}],"byName":{"x":{"level":"high"}}}`, "", ""},
		{`{"nmae":"a"}`, "nmae", `unknown field "nmae"; known fields here: Plain, byName, items, name, owner`},
		{`{"items":[{"level":"low"},{"levle":"low"}]}`, "items[1].levle", "unknown field"},
		{`{"items":[{"level":"mid"}]}`, "items[0].level", "want low or high"},
		{`{"byName":{"x":{"level":"mid"}}}`, "byName.x.level", "want low or high"},
		{`{"hidden":"a"}`, "hidden", "unknown field"},
		{`{"name":7}`, "", ""}, // a type mismatch is json.Unmarshal's to name
	} {
		var v any
		if err := json.Unmarshal([]byte(c.in), &v); err != nil {
			t.Fatal(err)
		}
		err := Check(v, reflect.TypeFor[doc]())
		switch {
		case c.path == "" && err != nil:
			t.Errorf("%s: unexpected %v", c.in, err)
		case c.path != "" && (err == nil || err.Path != c.path || !strings.Contains(err.Err.Error(), c.msg)):
			t.Errorf("%s: got %v, want %s: ...%s", c.in, err, c.path, c.msg)
		}
	}
}
