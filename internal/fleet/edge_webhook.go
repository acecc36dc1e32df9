package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pave-platform/pave/internal/traffic"
)

// WebhookEdge hands each split to an HTTP endpoint, for DNS or GSLB
// setups that Pave does not drive itself: a POST of
//
//	{"service":"checkout","shares":[{"cluster":"seoul","datacenter":"kr-1","weight":750000,"percent":"75"}, ...]}
//
// that must answer 2xx once the split is in force; anything else is an
// error and the controller tries again on its next pass.
type WebhookEdge struct {
	URL    string
	Client *http.Client // default: 10 s timeout
}

type webhookShare struct {
	Share
	Percent string `json:"percent"`
}

// Apply posts the split.
func (w WebhookEdge) Apply(ctx context.Context, service string, shares []Share) error {
	body := struct {
		Service string         `json:"service"`
		Shares  []webhookShare `json:"shares"`
	}{Service: service}
	for _, s := range shares {
		body.Shares = append(body.Shares, webhookShare{s, traffic.FormatPercent(s.Weight)})
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("edge webhook %s: %w", w.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("edge webhook %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("edge webhook %s answered %s: %s", w.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
