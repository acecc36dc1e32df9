package metrics

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	dto "github.com/prometheus/client_model/go"
)

// federate serves the latest sample of every series matching match[]
// (within the lookback window) in the text exposition format, with
// timestamps, as Prometheus' /federate does, so another Prometheus can
// scrape Pave with honor_labels: true.
func (s *Store) federate(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, false) {
		return
	}
	sets, aerr := matchers(r, true)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	maxt := time.Now().UnixMilli()
	mint := maxt - LookbackDelta.Milliseconds()
	q, err := s.db.Querier(mint, maxt)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer q.Close()
	var all []storage.SeriesSet
	hints := &storage.SelectHints{Start: mint, End: maxt}
	for _, ms := range sets {
		all = append(all, q.Select(r.Context(), true, hints, ms...))
	}
	set := storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)

	families := map[string]*dto.MetricFamily{}
	var it chunkenc.Iterator
	for set.Next() {
		series := set.At()
		it = series.Iterator(it)
		var (
			t  int64
			v  float64
			ok bool
		)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt == chunkenc.ValFloat {
				t, v = it.At()
				ok = true
			}
		}
		if it.Err() != nil || !ok || value.IsStaleNaN(v) {
			continue
		}
		name := series.Labels().Get(labels.MetricName)
		m := &dto.Metric{Untyped: &dto.Untyped{Value: &v}, TimestampMs: &t}
		series.Labels().Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				m.Label = append(m.Label, &dto.LabelPair{Name: &l.Name, Value: &l.Value})
			}
		})
		f := families[name]
		if f == nil {
			f = &dto.MetricFamily{Name: &name, Type: dto.MetricType_UNTYPED.Enum()}
			families[name] = f
		}
		f.Metric = append(f.Metric, m)
	}
	if err := set.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, n := range names {
		if err := enc.Encode(families[n]); err != nil {
			return
		}
	}
}
