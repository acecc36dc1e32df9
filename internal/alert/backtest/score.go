package backtest

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"sigs.k8s.io/yaml"
)

// What an incident should cause.
const (
	ExpectPage   = "page"
	ExpectSilent = "silent"
)

// Incident is a labelled window of one service.
type Incident struct {
	Service string    `json:"service"`
	Kind    string    `json:"kind,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Expect is page (default) or silent (noise that must not page).
	Expect string `json:"expect,omitempty"`
	// Budget is the fraction of the 30-day error budget the incident
	// burns in all (0.15 = 15%), used for the budget burnt before detection.
	Budget float64 `json:"budget,omitempty"`
}

// ParseIncidents reads an --incidents file: `incidents: [{service, kind,
// start, end, expect, budget}]`.
func ParseIncidents(data []byte) ([]Incident, error) {
	var f struct {
		Incidents []Incident `json:"incidents"`
	}
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	for i := range f.Incidents {
		in := &f.Incidents[i]
		if in.Expect == "" {
			in.Expect = ExpectPage
		}
		switch {
		case in.Service == "":
			return nil, fmt.Errorf("incidents[%d].service: missing", i)
		case in.Start.IsZero() || !in.End.After(in.Start):
			return nil, fmt.Errorf("incidents[%d]: want start and an end after it (RFC 3339)", i)
		case in.Expect != ExpectPage && in.Expect != ExpectSilent:
			return nil, fmt.Errorf("incidents[%d].expect: %q: want page or silent", i, in.Expect)
		}
	}
	return f.Incidents, nil
}

// Page is one notification episode: a service's page alerts firing without
// a gap (the Alertmanager groups them by service).
type Page struct {
	Service    string    `json:"service"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Alerts     []string  `json:"alerts"`
	Incident   string    `json:"incident,omitempty"` // kind of the incident it belongs to, "" for a false page
	TruePage   bool      `json:"truePage"`
	incidentIx int
}

// KindScore is the outcome for one kind of incident.
type KindScore struct {
	Kind      string `json:"kind"`
	Incidents int    `json:"incidents"`
	Expect    string `json:"expect"`
	// Paged counts the incidents with a page.
	Paged int `json:"paged"`
	// MedianDetection and MedianReset over the paged incidents.
	MedianDetection Duration `json:"medianDetection,omitempty"`
	MedianReset     Duration `json:"medianReset,omitempty"`
}

// Score is one rule set's result.
type Score struct {
	RuleSet         string   `json:"ruleSet"`
	Pages           int      `json:"pages"`
	FalsePages      int      `json:"falsePages"`
	PagesPerWeek    float64  `json:"pagesPerWeek"`
	Precision       float64  `json:"precision"`
	Recall          float64  `json:"recall"`
	MedianDetection Duration `json:"medianDetection"`
	MedianReset     Duration `json:"medianReset"`
	// BudgetBeforeDetection is the median fraction of the 30-day budget the
	// paged incidents burnt before their page (pro rata over the incident).
	BudgetBeforeDetection float64     `json:"budgetBeforeDetection"`
	Kinds                 []KindScore `json:"kinds"`
	// Missed lists the incidents that should have paged and did not.
	Missed []Incident `json:"missed,omitempty"`
	// False lists the pages that belong to no incident or to noise.
	False []Page `json:"falsePageList,omitempty"`
}

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// Grace is how long after an incident's end a page still belongs to it:
// the long windows lag the data.
const Grace = time.Hour

// Evaluate scores the firings of one rule set against the incidents.
func Evaluate(name string, firings []Firing, incidents []Incident, from, to time.Time, step time.Duration) Score {
	pages := episodes(firings, step)
	sc := Score{RuleSet: name, Pages: len(pages)}
	byKind := map[string]*KindScore{}
	var kinds []string
	det := map[string][]time.Duration{}
	res := map[string][]time.Duration{}
	var allDet, allRes []time.Duration
	var budget []float64
	var shouldPage, paged int
	for i, in := range incidents {
		ks := byKind[in.Kind]
		if ks == nil {
			ks = &KindScore{Kind: in.Kind, Expect: in.Expect}
			byKind[in.Kind] = ks
			kinds = append(kinds, in.Kind)
		}
		ks.Incidents++
		var first, last *Page
		for j := range pages {
			p := &pages[j]
			if p.Service != in.Service || p.End.Before(in.Start) || p.Start.After(in.End.Add(Grace)) {
				continue
			}
			// A page already running before the incident is not its page.
			if p.Start.Before(in.Start.Add(-step)) {
				continue
			}
			p.Incident, p.incidentIx = in.Kind, i
			p.TruePage = in.Expect == ExpectPage
			if first == nil || p.Start.Before(first.Start) {
				first = p
			}
			if last == nil || p.End.After(last.End) {
				last = p
			}
		}
		if in.Expect == ExpectPage {
			shouldPage++
		}
		if first == nil {
			if in.Expect == ExpectPage {
				sc.Missed = append(sc.Missed, in)
			}
			continue
		}
		ks.Paged++
		if in.Expect != ExpectPage {
			continue
		}
		paged++
		d := max(0, first.Start.Sub(in.Start))
		r := max(0, last.End.Sub(in.End))
		det[in.Kind] = append(det[in.Kind], d)
		res[in.Kind] = append(res[in.Kind], r)
		allDet, allRes = append(allDet, d), append(allRes, r)
		if in.Budget > 0 {
			frac := min(1, float64(d)/float64(in.End.Sub(in.Start)))
			budget = append(budget, in.Budget*frac)
		}
	}
	for _, p := range pages {
		if !p.TruePage {
			sc.FalsePages++
			sc.False = append(sc.False, p)
		}
	}
	if sc.Pages > 0 {
		sc.Precision = float64(sc.Pages-sc.FalsePages) / float64(sc.Pages)
	} else {
		sc.Precision = 1
	}
	if shouldPage > 0 {
		sc.Recall = float64(paged) / float64(shouldPage)
	}
	sc.PagesPerWeek = float64(sc.Pages) / (to.Sub(from).Hours() / (24 * 7))
	sc.MedianDetection, sc.MedianReset = Duration(median(allDet)), Duration(median(allRes))
	if len(budget) > 0 {
		slices.Sort(budget)
		sc.BudgetBeforeDetection = budget[len(budget)/2]
	}
	for _, k := range kinds {
		ks := byKind[k]
		ks.MedianDetection, ks.MedianReset = Duration(median(det[k])), Duration(median(res[k]))
		sc.Kinds = append(sc.Kinds, *ks)
	}
	return sc
}

// episodes merges a service's firings into pages: overlapping or adjacent
// (within one step) intervals are one notification.
func episodes(firings []Firing, step time.Duration) []Page {
	bySvc := map[string][]Firing{}
	for _, f := range firings {
		bySvc[f.Service] = append(bySvc[f.Service], f)
	}
	var out []Page
	for svc, fs := range bySvc {
		sort.Slice(fs, func(i, j int) bool { return fs[i].Start.Before(fs[j].Start) })
		var cur *Page
		for _, f := range fs {
			if cur != nil && !f.Start.After(cur.End.Add(step)) {
				cur.End = maxTime(cur.End, f.End)
				if !slices.Contains(cur.Alerts, f.Alert) {
					cur.Alerts = append(cur.Alerts, f.Alert)
				}
				continue
			}
			if cur != nil {
				out = append(out, *cur)
			}
			cur = &Page{Service: svc, Start: f.Start, End: f.End, Alerts: []string{f.Alert}, incidentIx: -1}
		}
		if cur != nil {
			out = append(out, *cur)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Service < out[j].Service
	})
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
