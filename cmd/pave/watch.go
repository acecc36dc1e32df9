package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// watchInterval is how often --watch reads again.
var watchInterval = 2 * time.Second

// watchOrPrint prints what get returns once, or with watch again whenever
// its data changes until interrupted, as kubectl get --watch does: in a terminal
// the screen is redrawn; otherwise each changed view is appended.
func watchOrPrint(cmd *cobra.Command, g *globals, watch bool, get func(context.Context) (any, func(io.Writer), error)) error {
	ctx, w := cmd.Context(), cmd.OutOrStdout()
	if !watch {
		v, text, err := get(ctx)
		if err != nil {
			return err
		}
		return g.print(w, v, text)
	}
	redraw := !g.machine() && isTerminal(w)
	var last string
	for {
		v, text, err := get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// A change is a change of the data, not of an age column.
		key, _ := json.Marshal(v)
		if redraw || string(key) != last {
			var buf bytes.Buffer
			if err := g.print(&buf, v, text); err != nil {
				return err
			}
			if redraw {
				fmt.Fprintf(w, "\x1b[H\x1b[2J%s — every %s, %s\n\n", cmd.CommandPath(), watchInterval, time.Now().Format(time.TimeOnly))
			} else if last != "" && !g.machine() {
				fmt.Fprintln(w)
			}
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			last = string(key)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchInterval):
		}
	}
}
