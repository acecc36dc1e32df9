//go:build race

package analysis

// The race detector slows the Monte-Carlo simulations about ten times;
// they then run fewer releases (same assertions, wider bounds).
const raceEnabled = true
