package main

import (
	"io"
	"os"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/release"
)

// style colours words for a terminal; its zero value writes plain text.
// Colour is on only for a terminal, and off when NO_COLOR is set
// (https://no-color.org) or TERM is dumb.
type style struct{ on bool }

func styleFor(w io.Writer) style {
	return style{on: colourAllowed(isTerminal(w), os.Getenv)}
}

func colourAllowed(terminal bool, getenv func(string) string) bool {
	return terminal && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

func (s style) paint(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) bold(t string) string   { return s.paint("1", t) }
func (s style) red(t string) string    { return s.paint("31", t) }
func (s style) green(t string) string  { return s.paint("32", t) }
func (s style) yellow(t string) string { return s.paint("33", t) }
func (s style) cyan(t string) string   { return s.paint("36", t) }

func (s style) phase(p release.Phase) string {
	switch p {
	case release.Promoted:
		return s.green(p.Words())
	case release.RolledBack, release.Failed, release.Aborted:
		return s.red(p.Words())
	case release.Paused:
		return s.yellow(p.Words())
	default:
		return s.cyan(p.Words())
	}
}

func (s style) verdict(v analysis.Verdict) string {
	switch v {
	case analysis.Pass:
		return s.green(string(v))
	case analysis.Fail:
		return s.red(string(v))
	default:
		return s.yellow(string(v))
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
