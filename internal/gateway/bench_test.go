package gateway

import (
	"bufio"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkProxy measures one proxied request over kept-alive loopback
// connections (client -> gateway -> fasthttp upstream), allocations
// included; bench/gateway compares the whole server against nginx.
func BenchmarkProxy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.WriteString("v1\n") }}
	go up.Serve(ln)
	defer up.Shutdown()
	g := New(Options{Log: quietLog()})
	g.SetEndpoints("orders", "v1", []string{ln.Addr().String()})
	gw := startGateway(b, g)
	conn, err := net.Dial("tcp", gw)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	req := []byte("GET /hello HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
	var resp fasthttp.Response
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := resp.Read(br); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != 200 {
			b.Fatalf("status %d", resp.StatusCode())
		}
	}
}
