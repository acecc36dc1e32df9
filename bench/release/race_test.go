//go:build race

package main

// The race detector slows the simulator about 16 times; the small
// benchmark then runs fewer releases (same assertions).
const raceEnabled = true
