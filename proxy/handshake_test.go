package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent first requests for one repository share one handshake; the
// client that started it hanging up must not fail the others.
func TestSharedHandshakeSurvivesFirstClientHangingUp(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var pings atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			once.Do(func() { close(arrived) })
			<-release
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	u, _ := url.Parse(srv.URL)
	ups := newUpstreams(map[string]Endpoint{testHost: {URL: u}}, nil,
		newCredentialStore(nil, false), slog.New(slog.DiscardHandler), newMetrics())

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	go func() { _, err := ups.client(ctxA, testHost, "team/app"); errA <- err }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the handshake never reached the upstream")
	}
	errB := make(chan error, 1)
	go func() { _, err := ups.client(context.Background(), testHost, "team/app"); errB <- err }()
	// B may join A's handshake before or after A hangs up: either way there
	// must be one handshake, and it must survive. Had A's hangup ended it, B
	// fails (it joined) or shakes hands again (it came late), which the
	// upstream's count of pings shows.
	cancelA()
	if err := <-errA; err == nil {
		t.Log("first client finished before its cancellation took effect")
	}
	close(release)
	select {
	case err := <-errB:
		if err != nil {
			t.Fatalf("second client failed because the first hung up: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second client never got its upstream client")
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("the upstream was pinged %d times, want 1: the first client's hangup ended the shared handshake", n)
	}
}
