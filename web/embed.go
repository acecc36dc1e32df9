// Package web holds the control plane's UI assets, served from the binary.
// Pages are plain HTML and JavaScript modules with no build step, so the
// binary needs nothing else installed to show them. Third-party libraries
// (uPlot for the plots) are pinned in package-lock.json and copied by
// scripts/deps.sh into static/lib, which git ignores and go:embed takes.
package web

import "embed"

// Static is the UI, rooted at static/.
//
//go:embed static
var Static embed.FS
