package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/telemetry"
)

// A slowloris (many connections that send their headers a byte at a
// time) and a client that sends an endless body neither stop the
// listener from answering others, and are cut off by the timeouts.
func TestListenerSurvivesSlowlorisAndOversizedBodies(t *testing.T) {
	t.Parallel()
	for name, v := range map[string]time.Duration{"read-header": defaultTimeouts.readHeader, "read": defaultTimeouts.read,
		"write": defaultTimeouts.write, "idle": defaultTimeouts.idle} {
		if v <= 0 {
			t.Errorf("the %s timeout of pave up's listeners is not set", name)
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "ok %d", n)
	})
	// The slow clients are cut off after readHeader; another client must
	// be answered well before that, however loaded the machine is.
	const readHeader = 5 * time.Second
	hs := newHTTPServerWith(h, listenerTimeouts{readHeader: readHeader, read: 2 * time.Second, write: 2 * time.Second, idle: time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	addr := ln.Addr().String()

	const slow = 200
	conns := make([]net.Conn, 0, slow)
	for range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		conns = append(conns, c)
	}
	// An endless body: more than the limit, sent slowly.
	fat, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fat.Close()
	fmt.Fprintf(fat, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 64<<20)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 1024; i++ {
			if _, err := fat.Write(chunk); err != nil {
				return
			}
		}
	}()

	resp, err := (&http.Client{Timeout: readHeader - time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("with %d slow clients and a fat one, another client got no answer before they were cut off: %v", slow, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another client: %d", resp.StatusCode)
	}
	// The fat body is refused once past the limit.
	fat.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr, err := http.ReadResponse(bufio.NewReader(fat), nil)
	if err != nil || fr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v %v", fr, err)
	}
	// The slow ones are cut off at the read-header timeout: each read
	// ends with the server's close, long before this deadline.
	deadline := time.Now().Add(readHeader + 10*time.Second)
	cut := 0
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		if _, err := io.ReadAll(c); err == nil { // EOF: the server closed it
			cut++
		}
	}
	if cut != slow {
		t.Fatalf("%d of %d slowloris connections were closed by the server", cut, slow)
	}
}

func TestPlainHTTPOffLoopbackNeedsInsecureHTTP(t *testing.T) {
	cfg := config.Default()
	cfg.HTTPAddr = "0.0.0.0:7070"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	err := checkExposure(cfg, log)
	if err == nil || !strings.Contains(err.Error(), "http-addr=0.0.0.0:7070") || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("no TLS off loopback: %v", err)
	}
	cfg.InsecureHTTP = true
	if err := checkExposure(cfg, log); err != nil || !strings.Contains(logs.String(), "INSECURE") {
		t.Fatalf("--insecure-http starts and warns: %v %s", err, logs.String())
	}
	cfg = config.Default()
	cfg.OTLPGRPCAddr = "192.0.2.1:4317"
	if err := checkExposure(cfg, log); err == nil || !strings.Contains(err.Error(), "otlp-grpc-addr") {
		t.Fatalf("OTLP/gRPC off loopback: %v", err)
	}
	cfg.TLSCert, cfg.TLSKey = "c.pem", "k.pem"
	if err := checkExposure(cfg, log); err != nil {
		t.Fatalf("with TLS: %v", err)
	}
}

// TestOTLPOnLoopbackRefusesWebPages: the loopback intake, which the
// machine's services reach without a token, refuses what a web page could
// send (a DNS-rebinding Host, a cross-site request); off loopback the
// ingest token guards it instead.
func TestOTLPOnLoopbackRefusesWebPages(t *testing.T) {
	t.Parallel()
	reached := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++; w.WriteHeader(200) })
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	refuseAll := &telemetry.IngestAuth{Verify: func(context.Context, string) (string, string, bool) { return "", "no token", false }}
	g := guardOTLP(lo, h, refuseAll, []string{"otel.internal"}, quiet)
	for _, c := range []struct {
		name, host, origin, site string
		want                     int
	}{
		{"a service", "127.0.0.1:4318", "", "", 200},
		{"localhost", "localhost:4318", "", "", 200},
		{"an allowed name", "otel.internal:4318", "", "", 200},
		{"a rebinding page", "evil.example:4318", "", "", 421},
		{"another site's page", "127.0.0.1:4318", "http://evil.example", "", 403},
		{"a cross-site fetch", "127.0.0.1:4318", "", "cross-site", 403},
	} {
		r, _ := http.NewRequest("POST", "http://127.0.0.1:4318/v1/logs", strings.NewReader("{}"))
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		before := reached
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, r)
		if rec.Code != c.want || (c.want != 200) != (reached == before) {
			t.Errorf("%s: got %d (intake reached: %v), want %d", c.name, rec.Code, reached > before, c.want)
		}
	}
	// Off loopback the token guard answers, whatever the Host.
	offLn := fakeAddrListener{Listener: lo, addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4318}}
	r, _ := http.NewRequest("POST", "http://192.0.2.7:4318/v1/logs", strings.NewReader("{}"))
	r.RemoteAddr = "192.0.2.9:5000"
	rec := httptest.NewRecorder()
	guardOTLP(offLn, h, refuseAll, nil, quiet).ServeHTTP(rec, r)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("off loopback without a token: got %d, want 401", rec.Code)
	}
}

// fakeAddrListener reports another address than the one it listens on.
type fakeAddrListener struct {
	net.Listener
	addr net.Addr
}

func (l fakeAddrListener) Addr() net.Addr { return l.addr }
