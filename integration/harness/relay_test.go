package harness

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestRelayCapsThroughput checks that the relay holds a stream to its rate
// (within 15 %) and carries every byte.
func TestRelayCapsThroughput(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 16 << 20
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	const rate = 64 << 20 // bytes per second
	r := StartRelay(t, ln.Addr().String(), rate)
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	n, err := io.Copy(io.Discard, c)
	elapsed := time.Since(start)
	if err != nil || n != size {
		t.Fatalf("got %d bytes, %v; want %d", n, err, size)
	}
	want := time.Duration(float64(size) / rate * float64(time.Second))
	if elapsed < want*85/100 {
		t.Errorf("16 MiB at 64 MiB/s took %s, faster than the cap allows (%s)", elapsed, want)
	}
	t.Logf("16 MiB through a 64 MiB/s relay: %s (ideal %s)", elapsed, want)
}

// TestRelayCloseCutsConnectionsBeingAccepted closes the relay while a
// connection is still being set up (accepted, upstream being dialled): Close
// must cut it too and return, not wait for a client that never hangs up.
func TestRelayCloseCutsConnectionsBeingAccepted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // an upstream that accepts and then says nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for i := 0; i < 200; i++ {
		r, err := NewRelay(ln.Addr().String(), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close still waits for an idle client after 10s", i)
		}
		// The relay's side is gone: the client reads EOF (or a reset), never data.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("round %d: connection still open after Close: read %d, %v", i, n, err)
		}
		c.Close()
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
