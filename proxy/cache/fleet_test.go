package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// scriptedFleet answers Claim with what a test scripts (as a replaying
// transport does for HTTP) and records the Done calls.
type scriptedFleet struct {
	claim func(d digest.Digest) FleetClaim

	mu     sync.Mutex
	claims int
	dones  []error
}

func (s *scriptedFleet) Claim(_ context.Context, _, _ string, d digest.Digest) FleetClaim {
	s.mu.Lock()
	s.claims++
	s.mu.Unlock()
	c := s.claim(d)
	done := c.Done
	c.Done = func(err error) {
		s.mu.Lock()
		s.dones = append(s.dones, err)
		s.mu.Unlock()
		if done != nil {
			done(err)
		}
	}
	return c
}

func (s *scriptedFleet) doneErrs() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.dones...)
}

// TestLeaseTakenAfterTheHolderUploadedReadsTheSharedTier: the previous
// holder uploads the blob and releases its lease between this fill's first
// look in the shared tier and its own lease: the fill reads the shared copy
// instead of going upstream, and releases the lease.
func TestLeaseTakenAfterTheHolderUploadedReadsTheSharedTier(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 256<<10)
	d := u.add(data)
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fl := &scriptedFleet{claim: func(d digest.Digest) FleetClaim {
		// The previous holder's upload lands now.
		if err := tier.Put(context.Background(), d, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Error(err)
		}
		return FleetClaim{Done: func(error) {}} // taken
	}}
	c := openCache(t, t.TempDir(), Options{Shared: tier, Fleet: fl})
	fetchAll(t, c, u, d, data)
	waitFills(t, c)
	if g := u.gets.Load(); g != 0 {
		t.Fatalf("upstream GETs = %d, want 0 (the shared copy appeared before the lease was taken)", g)
	}
	if st := c.Stats(); st.SharedHits != 1 || st.SharedUploads != 0 {
		t.Fatalf("stats %+v: want one shared hit and no upload", st)
	}
	if dones := fl.doneErrs(); len(dones) != 1 || dones[0] != nil {
		t.Fatalf("Done calls %v, want one with nil", dones)
	}
}

// TestFleetClaimEndsOnceAfterUpload: a taken lease ends (Done) once, after
// the commit and the upload to the shared tier; a failed fill ends it with
// the error.
func TestFleetClaimEndsOnceAfterUpload(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 256<<10)
	d := u.add(data)
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var uploadedAtDone bool
	fl := &scriptedFleet{claim: func(d digest.Digest) FleetClaim {
		return FleetClaim{Done: func(error) {
			_, err := tier.Stat(context.Background(), d)
			uploadedAtDone = err == nil
		}}
	}}
	c := openCache(t, t.TempDir(), Options{Shared: tier, Fleet: fl})
	fetchAll(t, c, u, d, data)
	waitFills(t, c)
	if dones := fl.doneErrs(); len(dones) != 1 || dones[0] != nil || !uploadedAtDone {
		t.Fatalf("Done calls %v, shared copy there at Done: %v; want one nil Done after the upload", dones, uploadedAtDone)
	}

	// A corrupt peer: the fill fails, nothing is committed, Done hears why.
	other := randomBytes(t, 64<<10)
	d2 := digest.FromBytes(other)
	fl2 := &scriptedFleet{claim: func(digest.Digest) FleetClaim {
		return FleetClaim{Peer: func(context.Context) (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte{'x'}, len(other)))), int64(len(other)), nil
		}}
	}}
	u.add(other)
	c2 := openCache(t, t.TempDir(), Options{Fleet: fl2})
	r, err := c2.Fetch(context.Background(), host, repo, d2, -1, u.source(repo, d2))
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading a corrupt peer copy: %v, want ErrDigestMismatch", err)
	}
	waitFills(t, c2)
	if c2.Has(host, repo, d2) {
		t.Fatal("a corrupt peer copy was committed")
	}
	if dones := fl2.doneErrs(); len(dones) != 1 || !errors.Is(dones[0], ErrDigestMismatch) {
		t.Fatalf("Done calls %v, want one with ErrDigestMismatch", dones)
	}
}
