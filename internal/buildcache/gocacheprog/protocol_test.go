package gocacheprog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecoderReadsWhatTheGoCommandWrites(t *testing.T) {
	body := []byte("compiled package bytes")
	aid, oid := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	// As cmd/go/internal/cache/prog.go writes: JSON object, newline, an
	// extra newline, then the body as a quoted base64 string.
	stream := `{"ID":1,"Command":"get","ActionID":"` + base64.StdEncoding.EncodeToString(aid) + `"}` + "\n\n" +
		`{"ID":2,"Command":"put","ActionID":"` + base64.StdEncoding.EncodeToString(aid) + `","OutputID":"` +
		base64.StdEncoding.EncodeToString(oid) + `","BodySize":22}` + "\n\n" + `"` + base64.StdEncoding.EncodeToString(body) + `"` + "\n" +
		`{"ID":3,"Command":"put","ActionID":"` + base64.StdEncoding.EncodeToString(aid) + `","OutputID":"` +
		base64.StdEncoding.EncodeToString(oid) + `"}` + "\n\n" +
		`{"ID":4,"Command":"close"}` + "\n"
	d := NewDecoder(strings.NewReader(stream))
	var got []*Request
	for {
		r, err := d.Decode()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 4 || got[0].Command != CmdGet || !bytes.Equal(got[0].ActionID, aid) ||
		got[1].Command != CmdPut || !bytes.Equal(got[1].Body, body) || !bytes.Equal(got[1].OutputID, oid) ||
		got[2].BodySize != 0 || got[2].Body != nil || got[3].Command != CmdClose {
		t.Fatalf("decoded %+v", got)
	}
}

func TestDecoderRefusesBrokenMessages(t *testing.T) {
	aid := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	for _, tc := range []struct{ in, want string }{
		{`{"ID":1,"Command":"rm"}`, `unknown command "rm"`},
		{`{"ID":1,"Command":"get","ActionID":"AAAA"}`, "ActionID has 3 bytes, want 32"},
		{`{"ID":1,"Command":"put","ActionID":"` + aid + `"}`, "OutputID has 0 bytes"},
		{`{"ID":1,"Command":"put","ActionID":"` + aid + `","OutputID":"` + aid + `","BodySize":2000000000}`, "BodySize 2000000000 outside"},
		{`{"ID":1,"Command":"put","ActionID":"` + aid + `","OutputID":"` + aid + `","BodySize":-1}`, "BodySize -1 outside"},
		{`{"ID":1,"Command":"put","ActionID":"` + aid + `","OutputID":"` + aid + `","BodySize":5}` + "\n\"AAAA\"", "body has 3 bytes, BodySize says 5"},
		{`{"ID":1,"Command":"put","ActionID":"` + aid + `","OutputID":"` + aid + `","BodySize":5}` + "\n\"!!\"", "reading the put's body"},
		{`{"ID":1,`, "reading a request"},
	} {
		_, err := NewDecoder(strings.NewReader(tc.in)).Decode()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

// FuzzDecoder: any byte stream gives requests that pass their checks, or
// an error; never a panic, never a put whose body disagrees with BodySize.
func FuzzDecoder(f *testing.F) {
	aid := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	f.Add([]byte(`{"ID":1,"Command":"get","ActionID":"` + aid + `"}`))
	f.Add([]byte(`{"ID":2,"Command":"put","ActionID":"` + aid + `","OutputID":"` + aid + `","BodySize":3}` + "\n\n\"YWJj\"\n{\"ID\":3,\"Command\":\"close\"}"))
	f.Add([]byte(`{"ID":2,"Command":"put","ActionID":"` + aid + `","OutputID":"` + aid + `","BodySize":3}` + "\n\n\"YWJ\"\n"))
	f.Add([]byte("\"\"\n[]{}null"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in))
		for range 100 {
			r, err := d.Decode()
			if err != nil {
				return
			}
			if r.Command != CmdGet && r.Command != CmdPut && r.Command != CmdClose {
				t.Fatalf("accepted command %q", r.Command)
			}
			if r.Command != CmdClose && len(r.ActionID) != 32 {
				t.Fatalf("accepted ActionID of %d bytes", len(r.ActionID))
			}
			if r.Command == CmdPut && int64(len(r.Body)) != r.BodySize {
				t.Fatalf("put body %d bytes, BodySize %d", len(r.Body), r.BodySize)
			}
		}
	})
}
