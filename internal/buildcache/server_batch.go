package buildcache

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/pave-platform/pave/internal/buildcache/tier"
)

// batchGo streams every action the request's body lists (the format is
// tier.StreamMagic's): a new runner gets the previous build's outputs in
// one round trip. It only reads, so any reader may ask.
func (s *Server) batchGo(w http.ResponseWriter, r *http.Request) {
	actions, err := readActions(http.MaxBytesReader(w, r.Body, tier.MaxManifestActions*65))
	if err != nil {
		http.Error(w, "batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-pave-go-batch")
	bw := bufio.NewWriterSize(w, 256<<10)
	fmt.Fprintf(bw, "%s %d\n", tier.StreamMagic, len(actions))
	sent := map[string]bool{}
	var bytesOut int64
	defer func() { s.metrics.bytesOut.Add(float64(bytesOut)) }()
	for _, a := range actions {
		if r.Context().Err() != nil {
			return
		}
		e, err := s.goEntry(r, a)
		if err != nil {
			s.metrics.misses.WithLabelValues("go").Inc()
			bw.WriteString(a + " -\n")
			continue
		}
		head := fmt.Sprintf("%s %s %d %d", a, e.OutputID, e.Size, e.Time.UnixNano())
		if sent[e.OutputID] {
			s.metrics.hits.WithLabelValues("go").Inc()
			bw.WriteString(head + " =\n")
			continue
		}
		body, n, err := s.Store.Open(r.Context(), tier.CAS, e.OutputID)
		if err != nil || n != e.Size {
			if err == nil {
				body.Close()
			}
			s.metrics.misses.WithLabelValues("go").Inc()
			bw.WriteString(a + " -\n")
			continue
		}
		bw.WriteString(head + "\n")
		copied, err := io.CopyN(bw, body, n)
		body.Close()
		bytesOut += copied
		if err != nil {
			// The client sees a short body and falls back to single fetches.
			s.Log.Error("cache prefetch stream", "action", a, "err", err)
			return
		}
		sent[e.OutputID] = true
		s.metrics.hits.WithLabelValues("go").Inc()
	}
	bw.WriteString("end\n")
	bw.Flush()
}

// readActions reads action IDs, one a line.
func readActions(r io.Reader) ([]string, error) {
	var actions []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		a := sc.Text()
		if err := tier.CheckKey(a); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(actions)+1, err)
		}
		if actions = append(actions, a); len(actions) > tier.MaxManifestActions {
			return nil, errors.New("more than " + strconv.Itoa(tier.MaxManifestActions) + " actions")
		}
	}
	return actions, sc.Err()
}
