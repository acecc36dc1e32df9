package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/release"
)

func releaseListCommand(g *globals) *cobra.Command {
	var service string
	var watch bool
	cmd := &cobra.Command{
		Use:   "list [--service S] [--watch]",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/releases"
			if service != "" {
				path += "?service=" + url.QueryEscape(service)
			}
			return watchOrPrint(cmd, g, watch, func(ctx context.Context) (any, func(io.Writer), error) {
				var raw []json.RawMessage
				if err := g.client().Do(ctx, http.MethodGet, path, nil, &raw); err != nil {
					return nil, nil, err
				}
				docs := make([]releaseDoc, 0, len(raw))
				for i := range raw { // the API lists newest first
					d, err := decodeRelease(raw[i])
					if err != nil {
						return nil, nil, err
					}
					docs = append(docs, d)
				}
				return docs, func(w io.Writer) { printReleaseList(w, docs, g.wide(), time.Now()) }, nil
			})
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "only this service's releases")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the list again whenever it changes")
	_ = cmd.RegisterFlagCompletionFunc("service", completeServices(g))
	return cmd
}

func printReleaseList(w io.Writer, docs []releaseDoc, wide bool, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "NAME\tSERVICE\tFROM\tTO\tPHASE\tSTEP\tAGE"
	if wide {
		head += "\tWEIGHTS\tVERDICT\tCREATED"
	}
	fmt.Fprintln(tw, head)
	for _, d := range docs {
		r := d.Release
		step := "-"
		if r.Status.Step >= 0 && r.Status.Step < len(r.Spec.Steps) {
			step = r.Spec.Steps[r.Status.Step].String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Metadata.Name, r.Spec.Service, orNone(r.Status.Stable), r.Spec.Version,
			r.Status.Phase.Words(), step, shortDuration(now.Sub(r.Metadata.CreationTimestamp)))
		if wide {
			verdict := "-"
			if r.Status.Decision != nil {
				verdict = string(r.Status.Decision.Verdict)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", orDash(r.Status.Weights.String()), verdict, r.Metadata.CreationTimestamp.Local().Format(time.DateTime))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func releaseStatusCommand(g *globals) *cobra.Command {
	var watch bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME|SERVICE [--watch [--timeout D]]",
		Short: "Show a release: step, weights, evidence, verdict, what is missing",
		Long: `Show a release. A service name stands for its latest release. With --watch
the command follows the release to its end, like kubectl rollout status, and
exits 0 only when it was promoted (2 rolled back, 3 failed or aborted, 4
--timeout passed, 5 control plane unreachable).`,
		Example: `  pave release status orders
  pave release status orders-v2 --watch --timeout 10m
  pave release status orders -o jsonpath='{.status.phase}'`,
		Args:              exactArgs(1, "a release or service name"),
		ValidArgsFunction: completeReleasesAndServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := resolveRelease(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			if watch {
				return followRelease(cmd.Context(), g, cmd.OutOrStdout(), d.Metadata.Name, timeout)
			}
			return g.print(cmd.OutOrStdout(), d, func(w io.Writer) { fmt.Fprint(w, renderRelease(d, time.Now(), 0, styleFor(w))) })
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow it live until it ends (exit 0 only when promoted)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --watch, stop after this long (exit 4; the release goes on); 0 waits for the end")
	return cmd
}

func releaseHistoryCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "history NAME|SERVICE",
		Short:             "Show a release's timeline, one line per event",
		Example:           "  pave release history orders\n  pave release history orders-v2 -o json",
		Args:              exactArgs(1, "a release or service name"),
		ValidArgsFunction: completeReleasesAndServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := resolveReleaseName(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			var evs []release.Event
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/releases/"+url.PathEscape(name)+"/history", nil, &evs); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), evs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, e := range evs {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Type, historyText(e))
				}
				tw.Flush()
			})
		},
	}
}

// releaseActionCommand is pause, resume, promote or abort. Pause and resume
// are idempotent: pausing a paused release is not an error.
func releaseActionCommand(g *globals, a release.Action) *cobra.Command {
	short := map[release.Action]string{
		release.Pause:   "Hold a progressing release at its current step",
		release.Resume:  "Let a paused release progress again",
		release.Promote: "Send all traffic to the new version now, skipping the remaining steps",
		release.Abort:   "Send all traffic back to the stable version now",
	}[a]
	already := map[release.Action]release.Phase{release.Pause: release.Paused, release.Resume: release.Progressing}[a]
	return &cobra.Command{
		Use:               string(a) + " NAME|SERVICE",
		Short:             short,
		Args:              exactArgs(1, "a release or service name"),
		ValidArgsFunction: completeReleasesAndServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name, err := resolveReleaseName(ctx, g, args[0])
			if err != nil {
				return err
			}
			var raw json.RawMessage
			err = g.client().Do(ctx, http.MethodPost, "/api/v1/releases/"+url.PathEscape(name)+"/"+string(a), struct{}{}, &raw)
			var apiErr *apiclient.Error
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict && already != "" {
				if d, gerr := fetchRelease(ctx, g, name); gerr == nil && d.Status.Phase == already {
					return g.print(cmd.OutOrStdout(), d, func(w io.Writer) {
						fmt.Fprintf(w, "release %s is already %s; nothing to do\n", name, already.Words())
					})
				}
			}
			if err != nil {
				return err
			}
			d, err := decodeRelease(raw)
			if err != nil {
				return err
			}
			// The control plane answers a no-op (pausing a paused release)
			// with 200 and a message; older ones with 409 (above).
			var answer struct {
				Unchanged bool `json:"unchanged"`
			}
			_ = json.Unmarshal(raw, &answer)
			return g.print(cmd.OutOrStdout(), d, func(w io.Writer) {
				if answer.Unchanged {
					fmt.Fprintf(w, "release %s is already %s; nothing to do\n", d.Metadata.Name, already.Words())
					return
				}
				fmt.Fprintf(w, "release %s is %s%s (weights %s)\n", d.Metadata.Name, d.Status.Phase.Words(), outcomeMessage(d.Status), orNone(d.Status.Weights.String()))
				if d.Status.Phase == release.Paused {
					fmt.Fprintf(w, "resume it with `pave release resume %s`\n", d.Metadata.Name)
				}
			})
		},
	}
}

// releaseUndoCommand releases a service's previous version again.
func releaseUndoCommand(g *globals) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "undo SERVICE [--wait [--timeout D]]",
		Short: "Go back to the version a service ran before its last release",
		Long: `Go back to the version the service ran before its last promoted release,
as kubectl rollout undo does. The control plane starts a release of that
version; with --wait the command follows it like release --wait.`,
		Example:           "  pave release undo orders --wait",
		Args:              exactArgs(1, "SERVICE"),
		ValidArgsFunction: completeServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var raw json.RawMessage
			if err := g.client().Do(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(args[0])+"/undo", struct{}{}, &raw); err != nil {
				var apiErr *apiclient.Error
				if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound && strings.Contains(apiErr.Message, "404 page not found") {
					return fmt.Errorf("the control plane at %s has no undo endpoint; upgrade it (pave up) to use `pave release undo`", g.server)
				}
				return err
			}
			d, err := decodeRelease(raw)
			if err != nil || d.Metadata.Name == "" {
				// Not a release: print the answer as it is.
				var v any
				_ = json.Unmarshal(raw, &v)
				return g.print(cmd.OutOrStdout(), v, func(w io.Writer) { fmt.Fprintln(w, undoMessage(v)) })
			}
			if wait {
				return followRelease(ctx, g, cmd.OutOrStdout(), d.Metadata.Name, timeout)
			}
			return g.print(cmd.OutOrStdout(), d, func(w io.Writer) {
				fmt.Fprintln(w, createdLine(d))
			})
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the release back to its end; exit 0 only when promoted")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, stop after this long (exit 4)")
	return cmd
}

func undoMessage(v any) string {
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["message"].(string); ok {
			return s
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// createdLine says what a new release does next: its version starts at
// once and gets the first step only when ready, so a `traffic show` right
// after it still shows the stable version alone.
func createdLine(d releaseDoc) string {
	s := fmt.Sprintf("release %s created: %s %s → %s", d.Metadata.Name, d.Spec.Service, orNone(d.Status.Stable), d.Spec.Version)
	if d.Status.Phase == release.Pending && d.Status.Stable != "" && len(d.Spec.Steps) > 0 {
		s += fmt.Sprintf("; %s starts now and gets %s once ready", d.Spec.Version, d.Spec.Steps[0])
	}
	return s + fmt.Sprintf("; follow it with `pave release status %s --watch`", d.Spec.Service)
}
