//go:build !linux

package gateway

import "net"

// loopSupported: the event loop is Linux only; elsewhere every connection
// is served by the fasthttp path.
const loopSupported = false

type loop struct{ done chan struct{} }

func (l *loop) stop() {}

func (g *Gateway) startLoops(ln net.Listener, h1, h2 *connQueue) ([]*loop, error) { return nil, nil }
