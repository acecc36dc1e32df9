package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the first one
// wrapped in a lazyConn.
func tcpPair(t *testing.T) (*lazyConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return newLazyConn(c), peer
}

// A deadline extended after the first one was armed must not fire at the
// first one: the read waits for the data.
func TestLazyDeadlineExtendedIsNotEarly(t *testing.T) {
	c, peer := tcpPair(t)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond) // past the first deadline
		peer.Write([]byte("x"))
	}()
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		t.Fatalf("read after an extended deadline: %v, want the byte", err)
	}
}

// Clearing a deadline must not leave the armed one in force.
func TestLazyDeadlineClearedIsNotEarly(t *testing.T) {
	c, peer := tcpPair(t)
	if err := c.SetDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		peer.Write([]byte("x"))
	}()
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		t.Fatalf("read after a cleared deadline: %v, want the byte", err)
	}
	// Writes too: a cleared write deadline must not fail a write.
	time.Sleep(30 * time.Millisecond)
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatalf("write after a cleared deadline: %v", err)
	}
}

// A deadline that is reached is reported, not before it, whether it was
// armed directly or replaced an earlier one.
func TestLazyDeadlineFires(t *testing.T) {
	c, _ := tcpPair(t)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(60 * time.Millisecond)
	if err := c.SetReadDeadline(want); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, err := c.Read(b[:])
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if now := time.Now(); now.Before(want) {
		t.Fatalf("deadline reported %v before it was due", want.Sub(now))
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("deadline error %v is not a net.Error timeout (fasthttp maps those to 504)", err)
	}
	// A later deadline after one that fired works again.
	c2, peer := tcpPair(t)
	c2.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	if _, err := c2.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	c2.SetReadDeadline(time.Now().Add(time.Minute))
	peer.Write([]byte("z"))
	if _, err := io.ReadFull(c2, b[:]); err != nil || b[0] != 'z' {
		t.Fatalf("read after re-arming: %q, %v", b[:], err)
	}
}

// A deadline moved earlier (into the past, as net/http does to abort a
// read) takes effect at once, even on a read already blocked.
func TestLazyDeadlineEarlierAborts(t *testing.T) {
	c, _ := tcpPair(t)
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("aborted read: %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a deadline in the past did not abort the blocked read")
	}
}

// The raw read and write paths behave like net.Conn's: EOF, large writes
// against a slow reader, write deadlines on a full buffer, broken
// connections recognised by isConnFailure.
func TestLazyConnRawIO(t *testing.T) {
	c, peer := tcpPair(t)
	if rawIOSupported && c.raw == nil {
		t.Fatal("a TCP connection should use the raw system call path")
	}
	// A large write goes through whole although the peer reads slowly
	// (the socket buffer fills and the write waits in the poller).
	msg := make([]byte, 8<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(msg))
		time.Sleep(20 * time.Millisecond)
		_, _ = io.ReadFull(peer, b)
		got <- b
	}()
	if err := c.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Write(msg); n != len(msg) || err != nil {
		t.Fatalf("write: %d of %d bytes, %v", n, len(msg), err)
	}
	if b := <-got; string(b) != string(msg) {
		t.Fatal("the peer received different bytes than were written")
	}
	// Reads see the peer's bytes, then io.EOF when it closes its side.
	peer.Write([]byte("hello"))
	peer.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read: %q, %v; want \"hello\" and a clean EOF", b, err)
	}

	// A write deadline on a peer that never reads fires with a timeout.
	c2, _ := tcpPair(t)
	if err := c2.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := c2.Write(make([]byte, 64<<20))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || n >= 64<<20 {
		t.Fatalf("write to a stalled peer: %d bytes, %v; want a timeout", n, err)
	}

	// A reset connection fails writes with an error the retry logic knows.
	c3, peer3 := tcpPair(t)
	peer3.(*net.TCPConn).SetLinger(0)
	peer3.Close()
	time.Sleep(20 * time.Millisecond)
	for range 10 {
		if _, err = c3.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err == nil || !isConnFailure(err) {
		t.Fatalf("write to a reset peer: %v; want a connection failure", err)
	}
	// Reading a closed lazyConn reports net.ErrClosed.
	c3.Close()
	if _, err := c3.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}
