package backtest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// GenerateSpec describes a generated history: kit request counters of
// several services, with a day/night traffic curve and labelled incidents
// of every kind the rules must page on (or stay silent through).
type GenerateSpec struct {
	Start    time.Time `json:"start"`
	Days     int       `json:"days"`     // default 30
	Services int       `json:"services"` // default 20
	// Step is the sample resolution (default 1m).
	Step Duration `json:"step,omitempty"`
	// DayRPS is the busiest service's daytime rate; services range from a
	// fifth of it up (default 10 requests/s).
	DayRPS float64 `json:"dayRPS,omitempty"`
	// NightPerMinute is the requests a minute from 00:00 to 06:00 (default 1),
	// with NightErrors single failed requests a night (default 3).
	NightPerMinute float64 `json:"nightPerMinute,omitempty"`
	NightErrors    int     `json:"nightErrors,omitempty"`
	// BaseErrorRatio is the background failure ratio (default 0.0001).
	BaseErrorRatio float64 `json:"baseErrorRatio,omitempty"`
	// Objective is the availability SLO in percent the incidents' budget
	// burn is measured against (default 99.9).
	Objective float64 `json:"objective,omitempty"`
	Seed      uint64  `json:"seed,omitempty"`
}

// Duration is a time.Duration written as "1m".
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 1m", s)
	}
	*d = Duration(v)
	return nil
}

// ParseGenerateSpec reads a spec strictly (unknown keys are errors).
func ParseGenerateSpec(data []byte) (GenerateSpec, error) {
	var s GenerateSpec
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return s, fmt.Errorf("generate spec: %w", err)
	}
	return s.withDefaults()
}

func (s GenerateSpec) withDefaults() (GenerateSpec, error) {
	if s.Start.IsZero() {
		s.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if s.Days == 0 {
		s.Days = 30
	}
	if s.Services == 0 {
		s.Services = 20
	}
	if s.Step == 0 {
		s.Step = Duration(time.Minute)
	}
	if s.NightErrors == 0 {
		s.NightErrors = 3
	}
	def(&s.DayRPS, 10)
	def(&s.NightPerMinute, 1)
	def(&s.BaseErrorRatio, 0.0001)
	def(&s.Objective, 99.9)
	switch {
	case s.Days < 4 || s.Days > 90:
		return s, fmt.Errorf("generate spec: days %d: want 4 to 90 (incidents need room)", s.Days)
	case s.Services < 2 || s.Services > 500:
		return s, fmt.Errorf("generate spec: services %d: want 2 to 500", s.Services)
	case s.Step < Duration(10*time.Second) || s.Step > Duration(5*time.Minute):
		return s, fmt.Errorf("generate spec: step %s: want 10s to 5m", time.Duration(s.Step))
	case s.Objective <= 50 || s.Objective >= 100:
		return s, fmt.Errorf("generate spec: objective %v: want a percentage like 99.9", s.Objective)
	}
	return s, nil
}

// Sample is one point of a series.
type Sample struct {
	T int64 // milliseconds
	V float64
}

// Series is one generated series.
type Series struct {
	Labels  labels.Labels
	Samples []Sample
}

// Generated is a history and its labelled incidents.
type Generated struct {
	Series    []Series
	Incidents []Incident
	From, To  time.Time
}

// incident kinds of a generated history.
const (
	KindFastBurn = "fast-burn" // 100% errors for 5 min
	KindSlowBurn = "slow-burn" // 2% errors for 6 h
	KindBlip     = "blip"      // 10% errors for 30 s
	KindNight    = "night"     // a night of low traffic with single errors
	KindOutage   = "outage"    // zero traffic for 30 min
	KindStopped  = "stopped"   // the series stop for 3 h
)

// Generate builds the history. Every service gets one fast burn, one slow
// burn and three blips on different days; every night carries single
// errors; service 0 has a total outage (no traffic at all) and service 1's
// series stop for three hours. An incident must page when it burns at
// least 2% of the 30-day budget (or makes the service blind or unreachable).
func Generate(spec GenerateSpec) (Generated, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return Generated{}, err
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x9e3779b97f4a7c15))
	step := time.Duration(spec.Step)
	n := int(time.Duration(spec.Days) * 24 * time.Hour / step)
	out := Generated{From: spec.Start, To: spec.Start.Add(time.Duration(n-1) * step)}
	at := func(i int) time.Time { return spec.Start.Add(time.Duration(i) * step) }
	index := func(t time.Time) int { return int(t.Sub(spec.Start) / step) }
	budget := 1 - spec.Objective/100
	perStep := step.Seconds()

	for s := 0; s < spec.Services; s++ {
		name := fmt.Sprintf("svc%02d", s)
		dayRPS := spec.DayRPS * (0.2 + 0.8*float64(spec.Services-s)/float64(spec.Services))
		total := make([]float64, n) // requests in each step
		bad := make([]float64, n)
		for i := range n {
			h := float64(at(i).Hour()) + float64(at(i).Minute())/60
			var rate float64 // per step
			switch {
			case h < 6:
				rate = spec.NightPerMinute * perStep / 60
			case h < 7:
				rate = (spec.NightPerMinute/60 + (dayRPS-spec.NightPerMinute/60)*(h-6)) * perStep
			case h < 23:
				rate = dayRPS * perStep
			default:
				rate = (dayRPS - (dayRPS-spec.NightPerMinute/60)*(h-23)) * perStep
			}
			total[i] = poisson(rng, rate)
			if h >= 6 {
				bad[i] = poisson(rng, total[i]*spec.BaseErrorRatio)
			}
		}
		// Night noise: single failed requests at random minutes, 00:00-06:00.
		for d := range spec.Days {
			for range spec.NightErrors {
				i := index(spec.Start.Add(time.Duration(d)*24*time.Hour + time.Duration(rng.IntN(6*60))*time.Minute))
				if total[i] == 0 {
					total[i] = 1
				}
				bad[i] = 1
			}
			out.Incidents = append(out.Incidents, Incident{Service: name, Kind: KindNight, Expect: ExpectSilent,
				Start: spec.Start.Add(time.Duration(d) * 24 * time.Hour), End: spec.Start.Add(time.Duration(d)*24*time.Hour + 6*time.Hour)})
		}
		// Monthly budget in failed requests, for the incidents' burn.
		var sum float64
		for _, v := range total {
			sum += v
		}
		monthBudget := budget * sum * float64(30*24*time.Hour) / float64(time.Duration(n)*step)
		// Incidents start at 10:00-16:00 on distinct days, never on day 0-2
		// (the 3d windows fill first).
		days := rng.Perm(spec.Days - 3)
		day := func(k int) time.Time {
			return spec.Start.Add(time.Duration(days[k%len(days)]+3)*24*time.Hour + time.Duration(10*60+rng.IntN(6*60))*time.Minute)
		}
		add := func(kind string, start time.Time, d time.Duration, ratio float64) {
			i0, i1 := index(start), index(start.Add(d))
			var burnt float64
			for i := i0; i < max(i1, i0+1); i++ {
				// A window shorter than a step fails part of one step.
				frac := min(1, float64(d)/float64(step))
				b := math.Round(total[i] * ratio * frac)
				burnt += max(0, b-bad[i])
				bad[i] = max(bad[i], b)
			}
			inc := Incident{Service: name, Kind: kind, Start: start, End: start.Add(d), Budget: burnt / monthBudget, Expect: ExpectSilent}
			if inc.Budget >= 0.02 {
				inc.Expect = ExpectPage
			}
			out.Incidents = append(out.Incidents, inc)
		}
		add(KindFastBurn, day(0), 5*time.Minute, 1)
		add(KindSlowBurn, day(1), 6*time.Hour, 0.02)
		for k := 2; k < 5; k++ {
			add(KindBlip, day(k), 30*time.Second, 0.1)
		}
		missing := make([]bool, n)
		if s == 0 { // a total outage: nothing reaches the service
			start := day(5)
			for i := index(start); i < index(start.Add(30*time.Minute)); i++ {
				total[i], bad[i] = 0, 0
			}
			out.Incidents = append(out.Incidents, Incident{Service: name, Kind: KindOutage, Start: start, End: start.Add(30 * time.Minute), Expect: ExpectPage})
		}
		if s == 1 { // the series stop: nothing is scraped for 3 h
			start := day(5)
			for i := index(start); i < index(start.Add(3*time.Hour)); i++ {
				missing[i] = true
			}
			out.Incidents = append(out.Incidents, Incident{Service: name, Kind: KindStopped, Start: start, End: start.Add(3 * time.Hour), Expect: ExpectPage})
		}
		good, fail := make([]Sample, 0, n), make([]Sample, 0, n)
		var g, f float64
		for i := range n {
			g += total[i] - min(bad[i], total[i])
			f += min(bad[i], total[i])
			if missing[i] {
				continue
			}
			t := at(i).UnixMilli()
			good, fail = append(good, Sample{t, g}), append(fail, Sample{t, f})
		}
		out.Series = append(out.Series,
			Series{labels.FromStrings("__name__", "http_server_requests_total", "service", name, "status_class", "2xx"), good},
			Series{labels.FromStrings("__name__", "http_server_requests_total", "service", name, "status_class", "5xx"), fail})
	}
	return out, nil
}

// poisson draws from a Poisson distribution (normal approximation above 30).
func poisson(rng *rand.Rand, lambda float64) float64 {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// SeriesFile is the promtool-style input format of --series: series in
// expanding notation ('0+600x1440') from start, one value per interval.
type SeriesFile struct {
	Start    time.Time `json:"start"`
	Interval Duration  `json:"interval"`
	Series   []struct {
		Series string `json:"series"`
		Values string `json:"values"`
	} `json:"input_series"`
}

// ParseSeriesFile reads a series file.
func ParseSeriesFile(data []byte, parse func(string) (labels.Labels, []float64, []bool, error)) ([]Series, time.Time, time.Time, error) {
	var f SeriesFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("series file: %w", err)
	}
	if f.Start.IsZero() || f.Interval <= 0 {
		return nil, time.Time{}, time.Time{}, errors.New("series file: want start (RFC 3339) and interval (e.g. 1m)")
	}
	var out []Series
	end := f.Start
	for i, s := range f.Series {
		lbls, vals, omitted, err := parse(s.Series + " " + s.Values)
		if err != nil {
			return nil, time.Time{}, time.Time{}, fmt.Errorf("series file: input_series[%d]: %w", i, err)
		}
		ser := Series{Labels: lbls}
		for j, v := range vals {
			if omitted[j] {
				continue
			}
			t := f.Start.Add(time.Duration(j) * time.Duration(f.Interval))
			ser.Samples = append(ser.Samples, Sample{t.UnixMilli(), v})
			if t.After(end) {
				end = t
			}
		}
		out = append(out, ser)
	}
	return out, f.Start, end, nil
}

// MarshalIncidents renders incidents as an --incidents file.
func MarshalIncidents(incs []Incident) ([]byte, error) {
	var buf bytes.Buffer
	b, err := yaml.Marshal(map[string]any{"incidents": incs})
	if err != nil {
		return nil, err
	}
	buf.Write(b)
	return buf.Bytes(), nil
}

// SeriesDescParser adapts a promql parser's ParseSeriesDesc for
// ParseSeriesFile.
func SeriesDescParser(p interface {
	ParseSeriesDesc(string) (labels.Labels, []parser.SequenceValue, error)
}) func(string) (labels.Labels, []float64, []bool, error) {
	return func(s string) (labels.Labels, []float64, []bool, error) {
		l, vals, err := p.ParseSeriesDesc(s)
		if err != nil {
			return labels.EmptyLabels(), nil, nil, err
		}
		vs, om := make([]float64, len(vals)), make([]bool, len(vals))
		for i, v := range vals {
			vs[i], om[i] = v.Value, v.Omitted
		}
		return l, vs, om, nil
	}
}
