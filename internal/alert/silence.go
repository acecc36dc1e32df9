package alert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/silence"
	pb "github.com/prometheus/alertmanager/silence/silencepb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Silences are Alertmanager's (silence.Silences): matchers, a start and
// an end, an author and a comment, persisted as its snapshot file under
// DATA_DIR/alerting and written after every change.

// Silence is one silence as the API and CLI show it.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	// State is active, pending (starts later) or expired.
	State string `json:"state"`
}

// ErrNotFound is a silence that does not exist.
var ErrNotFound = errors.New("not found")

// ParseMatchers parses a silence's matchers as amtool and Alertmanager's
// API take them: `service=orders`, `service=orders,severity=~"page|ticket"`
// or `{service="orders"}`. Every matcher must not match the empty
// string alone (a silence of everything is refused), as Alertmanager
// refuses it.
func ParseMatchers(s string) ([]*amlabels.Matcher, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no matchers; want e.g. service=orders or 'service=orders,severity=~\"page|ticket\"'")
	}
	ms, err := amlabels.ParseMatchers(s)
	if err != nil {
		return nil, fmt.Errorf("matchers %q: %w; want e.g. service=orders or 'service=orders,severity=~\"page|ticket\"'", s, err)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("matchers %q: none found; want e.g. service=orders", s)
	}
	all := true
	for _, m := range ms {
		if !m.Matches("") {
			all = false
		}
	}
	if all {
		return nil, fmt.Errorf("matchers %q match every alert (each matches an empty label); name at least one label value, e.g. service=orders", s)
	}
	return ms, nil
}

func toPB(ms []*amlabels.Matcher) []*pb.Matcher {
	out := make([]*pb.Matcher, len(ms))
	for i, m := range ms {
		t := pb.Matcher_EQUAL
		switch m.Type {
		case amlabels.MatchNotEqual:
			t = pb.Matcher_NOT_EQUAL
		case amlabels.MatchRegexp:
			t = pb.Matcher_REGEXP
		case amlabels.MatchNotRegexp:
			t = pb.Matcher_NOT_REGEXP
		}
		out[i] = &pb.Matcher{Type: t, Name: m.Name, Pattern: m.Value}
	}
	return out
}

func fromPB(s *pb.Silence, now time.Time) Silence {
	out := Silence{ID: s.Id, StartsAt: s.StartsAt.AsTime(), EndsAt: s.EndsAt.AsTime(), UpdatedAt: s.UpdatedAt.AsTime(),
		CreatedBy: s.CreatedBy, Comment: s.Comment}
	ops := map[pb.Matcher_Type]string{pb.Matcher_EQUAL: "=", pb.Matcher_NOT_EQUAL: "!=", pb.Matcher_REGEXP: "=~", pb.Matcher_NOT_REGEXP: "!~"}
	ms := s.Matchers
	if len(ms) == 0 && len(s.MatcherSets) > 0 {
		ms = s.MatcherSets[0].Matchers
	}
	for _, m := range ms {
		out.Matchers = append(out.Matchers, fmt.Sprintf("%s%s%q", m.Name, ops[m.Type], m.Pattern))
	}
	switch {
	case !out.EndsAt.After(now):
		out.State = "expired"
	case out.StartsAt.After(now):
		out.State = "pending"
	default:
		out.State = "active"
	}
	return out
}

// NewSilence is a silence to create.
type NewSilence struct {
	Matchers  string    `json:"matchers"`
	StartsAt  time.Time `json:"startsAt,omitzero"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

// AddSilence creates a silence and persists the silences.
func (e *Engine) AddSilence(ctx context.Context, ns NewSilence) (Silence, error) {
	ms, err := ParseMatchers(ns.Matchers)
	if err != nil {
		return Silence{}, err
	}
	now := time.Now()
	if ns.StartsAt.IsZero() {
		ns.StartsAt = now
	}
	if !ns.EndsAt.After(ns.StartsAt) || !ns.EndsAt.After(now) {
		return Silence{}, fmt.Errorf("silence ends at %s, before it starts or in the past; give a duration, e.g. --for 2h", ns.EndsAt.Format(time.RFC3339))
	}
	if strings.TrimSpace(ns.Comment) == "" {
		return Silence{}, errors.New("a silence needs a comment saying why (e.g. --comment 'orders: planned DB migration, ticket OPS-42')")
	}
	if strings.TrimSpace(ns.CreatedBy) == "" {
		return Silence{}, errors.New("a silence needs an author")
	}
	sil := &pb.Silence{Matchers: toPB(ms), StartsAt: timestamppb.New(ns.StartsAt), EndsAt: timestamppb.New(ns.EndsAt),
		CreatedBy: ns.CreatedBy, Comment: ns.Comment}
	if err := e.notifier.silences.Set(ctx, sil); err != nil {
		return Silence{}, fmt.Errorf("silence: %w", err)
	}
	if err := e.notifier.snapshotSilences(); err != nil {
		return Silence{}, err
	}
	got, err := e.notifier.silences.QueryOne(ctx, silence.QIDs(sil.Id))
	if err != nil {
		return Silence{}, err
	}
	return fromPB(got, time.Now()), nil
}

// ExpireSilence ends a silence now and persists the silences.
func (e *Engine) ExpireSilence(ctx context.Context, id string) error {
	if err := e.notifier.silences.Expire(ctx, id); err != nil {
		if strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("silence %s: %w (list them with `pave alerts silences`)", id, ErrNotFound)
		}
		return fmt.Errorf("silence %s: %w", id, err)
	}
	return e.notifier.snapshotSilences()
}

// Silences are every silence not yet garbage-collected, active first.
func (e *Engine) Silences(ctx context.Context) ([]Silence, error) {
	sils, _, err := e.notifier.silences.Query(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]Silence, 0, len(sils))
	for _, s := range sils {
		out = append(out, fromPB(s, now))
	}
	rank := map[string]int{"active": 0, "pending": 1, "expired": 2}
	sort.Slice(out, func(i, j int) bool {
		if rank[out[i].State] != rank[out[j].State] {
			return rank[out[i].State] < rank[out[j].State]
		}
		return out[i].EndsAt.After(out[j].EndsAt)
	})
	return out, nil
}

// snapshotSilences writes the silences' snapshot now (Alertmanager
// writes it every 15 minutes; a silence must survive a crash at once).
func (n *notifier) snapshotSilences() error {
	path := filepath.Join(n.dir, "silences")
	f, err := os.CreateTemp(n.dir, ".silences-*")
	if err != nil {
		return fmt.Errorf("persisting silences: %w", err)
	}
	if _, err := n.silences.Snapshot(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("persisting silences: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("persisting silences: %w", err)
	}
	f.Close()
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("persisting silences: %w", err)
	}
	return nil
}
