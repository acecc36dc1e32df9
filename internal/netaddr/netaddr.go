// Package netaddr holds small facts about listen addresses that binaries
// share without linking the control plane's configuration (pave-telemetry
// keeps its resident memory low by importing only what it runs).
package netaddr

import "net"

// IsLoopback reports whether addr (host:port) listens only on the loopback
// interface: localhost or a loopback IP. An address without a port, or with
// an empty host (every interface), is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
