package harness

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Relay is a TCP relay on 127.0.0.1 whose total throughput, over every
// connection and both directions, is capped at a fixed rate: a link of
// known speed between a pulling host and its upstream registry.
type Relay struct {
	// Addr is the relay's 127.0.0.1:PORT; URL is http://Addr.
	Addr, URL string

	target  string
	limiter *linkLimiter
	ln      net.Listener
	wg      sync.WaitGroup

	mu     sync.Mutex
	closed bool // set by Close: connections accepted from then on are cut at once
	conns  map[net.Conn]struct{}
	bytes  int64
}

// StartRelay listens on a free loopback port and forwards every connection
// to target (host:port), at most bytesPerSecond in total; it closes on
// t.Cleanup.
func StartRelay(t testing.TB, target string, bytesPerSecond float64) *Relay {
	t.Helper()
	r, err := NewRelay(target, bytesPerSecond)
	if err != nil {
		t.Fatalf("harness: relay: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// NewRelay is StartRelay for callers without a testing.TB; Close it.
func NewRelay(target string, bytesPerSecond float64) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{
		Addr:    ln.Addr().String(),
		URL:     "http://" + ln.Addr().String(),
		target:  target,
		limiter: newLinkLimiter(bytesPerSecond),
		ln:      ln,
		conns:   map[net.Conn]struct{}{},
	}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Bytes is how many bytes the relay has carried, both directions.
func (r *Relay) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Close stops listening and cuts every open connection.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.handle(c)
		}()
	}
}

// track adds c to the connections Close cuts, or removes it. Adding fails
// (and closes c) once Close has run, so that a connection accepted while
// Close was cutting the others cannot outlive it.
func (r *Relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) handle(client net.Conn) {
	if !r.track(client, true) {
		return
	}
	upstream, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		r.track(client, false)
		return
	}
	if !r.track(upstream, true) {
		client.Close()
		r.track(client, false)
		return
	}
	defer func() {
		client.Close()
		upstream.Close()
		r.track(client, false)
		r.track(upstream, false)
	}()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		r.copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
	<-done
	<-done
}

// copy moves src to dst in chunks, each waiting for its slot on the link.
func (r *Relay) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.limiter.wait(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			r.mu.Lock()
			r.bytes += int64(n)
			r.mu.Unlock()
		}
		if err != nil {
			return // io.EOF or a broken connection: either way, this direction is done
		}
	}
}

// linkLimiter serialises byte transfers on one timeline: a chunk of n bytes
// occupies the link for n/rate seconds after the previous chunk, whichever
// connection sent it. Idle time is not banked beyond a small burst.
type linkLimiter struct {
	mu    sync.Mutex
	rate  float64 // bytes per second
	next  time.Time
	burst time.Duration
}

func newLinkLimiter(rate float64) *linkLimiter {
	return &linkLimiter{rate: rate, burst: 2 * time.Millisecond}
}

func (l *linkLimiter) wait(n int) {
	d := time.Duration(float64(n) / l.rate * float64(time.Second))
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now.Add(-l.burst)) {
		l.next = now.Add(-l.burst)
	}
	l.next = l.next.Add(d)
	until := l.next
	l.mu.Unlock()
	if wait := time.Until(until); wait > 0 {
		time.Sleep(wait)
	}
}
