package metrics

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// TargetStatus is one target of /api/v1/targets, in Prometheus' shape.
type TargetStatus struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`
}

// TargetsData is the data of /api/v1/targets.
type TargetsData struct {
	ActiveTargets  []TargetStatus `json:"activeTargets"`
	DroppedTargets []TargetStatus `json:"droppedTargets"`
}

// Targets reports every active target with its last scrape, sorted by
// pool and URL.
func (s *Store) Targets() []TargetStatus {
	out := []TargetStatus{}
	for pool, ts := range s.scrape.active() {
		for _, t := range ts {
			health, err, last, d := t.status()
			st := TargetStatus{
				DiscoveredLabels:   t.discovered.Map(),
				Labels:             t.labels.Map(),
				ScrapePool:         pool,
				ScrapeURL:          t.url,
				GlobalURL:          t.url,
				LastScrape:         last,
				LastScrapeDuration: d.Seconds(),
				Health:             health,
				ScrapeInterval:     t.discovered.Get(model.ScrapeIntervalLabel),
				ScrapeTimeout:      t.discovered.Get(model.ScrapeTimeoutLabel),
			}
			if err != nil {
				st.LastError = err.Error()
			}
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ScrapePool != out[j].ScrapePool {
			return out[i].ScrapePool < out[j].ScrapePool
		}
		return out[i].ScrapeURL < out[j].ScrapeURL
	})
	return out
}

func (s *Store) targetsAPI(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, false) {
		return
	}
	state := r.FormValue("state")
	data := TargetsData{ActiveTargets: []TargetStatus{}, DroppedTargets: []TargetStatus{}}
	switch state {
	case "", "any", "active":
		data.ActiveTargets = s.Targets()
	case "dropped":
	default:
		respondError(w, badData("invalid parameter \"state\": %q (want active, dropped or any)", state))
		return
	}
	if pool := r.FormValue("scrapePool"); pool != "" {
		data.ActiveTargets = slices.DeleteFunc(data.ActiveTargets, func(t TargetStatus) bool { return t.ScrapePool != pool })
	}
	respond(w, data, nil)
}

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata answers /api/v1/metadata from what the targets exposed in
// their last scrape (# TYPE, # HELP, # UNIT), deduplicated per metric.
func (s *Store) metadata(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, false) {
		return
	}
	n, aerr := limit(r)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	perMetric := -1
	if v := r.FormValue("limit_per_metric"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil {
			respondError(w, badData("invalid parameter \"limit_per_metric\": %q is not a whole number", v))
			return
		}
		perMetric = p
	}
	only := r.FormValue("metric")
	out := map[string][]metadataEntry{}
	for _, ts := range s.scrape.active() {
		for _, t := range ts {
			for _, md := range t.metadata(only) {
				e := metadataEntry{Type: string(md.Type), Help: md.Help, Unit: md.Unit}
				list := out[md.MetricFamily]
				if slices.Contains(list, e) || (perMetric > 0 && len(list) >= perMetric) {
					continue
				}
				if n > 0 && len(out) >= n && list == nil {
					continue
				}
				out[md.MetricFamily] = append(list, e)
			}
		}
	}
	respond(w, out, nil)
}

func sortStrings(s []string) { slices.Sort(s) }
