package cache

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// Fleet lets the hosts of a fleet fill each blob from upstream once
// (package proxy/fleet implements it; the cache knows no lease engine). A
// fill asks it on a miss in the local cache and in the shared tier, before
// going upstream.
type Fleet interface {
	// Claim decides who fills d across the fleet; host and repo are the
	// repository the fill is for (peers are asked in its name). It returns
	// quickly (the lease look-up is bounded): when the fleet cannot be
	// asked, the FleetClaim is empty and the fill goes upstream as without
	// a fleet.
	Claim(ctx context.Context, host, repo string, d digest.Digest) FleetClaim
}

// FleetClaim is the fleet's answer for one fill.
type FleetClaim struct {
	// Peer, when not nil, opens d from the host that holds the fill's lease
	// (it is filling d, or has it). The cache calls it only after
	// Upstream.Check proved the repository's access, and verifies what it
	// reads like any other source. On an error, or a stream that breaks
	// off, the fill goes upstream.
	Peer func(ctx context.Context) (body io.ReadCloser, size int64, err error)
	// Done, when not nil, is called exactly once: after the fill committed
	// and its upload to the shared tier ended (so hosts that look later find
	// the shared copy), or when the fill failed (err not nil). It releases
	// the lease this host took, or reports a peer whose copy did not
	// verify.
	Done func(err error)
}

func (fc FleetClaim) done(err error) {
	if fc.Done != nil {
		fc.Done(err)
	}
}

// fleetSource asks the fleet (Options.Fleet) who fills the content: when
// another host holds the fill's lease, the content streams from it, after
// this repository proved its access upstream; when this host takes the
// lease (or the fleet cannot be asked) the fill goes on to the upstream.
// Either way the fleet's claim is kept on the fill and ended (Done) after
// the commit and the shared-tier upload, or when the fill fails.
type fleetSource struct{ c *Cache }

func (fleetSource) String() string { return "fleet peer" }

// count: the fleet counts the bytes its peers send; bytes a broken-off peer
// stream was continued with from upstream are counted by peerSource.
func (fleetSource) count(int64) {}

// rejected: the claim's Done hears of it, with the fill's error.
func (fleetSource) rejected(digest.Digest) {}

func (s fleetSource) open(ctx context.Context, f *fill, acc *access) (io.ReadCloser, int64, error) {
	c := s.c
	f.claim = c.opts.Fleet.Claim(ctx, f.owner.Host, f.owner.Path, f.d)
	if f.claim.Peer == nil {
		return nil, 0, errNotHere // this host fills it
	}
	// Knowing a digest never reads content: the repository proves its
	// access upstream, with this host's credentials, as for the shared
	// tier.
	if err := acc.prove(ctx, f.d); err != nil {
		return nil, 0, err
	}
	body, size, err := f.claim.Peer(ctx)
	if err != nil {
		c.log.Warn("cache: fleet peer unavailable, going upstream", "digest", f.d, "error", err)
		return nil, 0, fmt.Errorf("%w: %w", errNotHere, err)
	}
	return &peerSource{ctx: ctx, c: c, peer: body, up: acc.up, size: size, d: f.d}, size, nil
}

// sharedAfterLease is the shared tier looked in again when this host has
// just taken the fill's lease: the previous holder may have uploaded the
// blob and released its lease between this fill's first look and its
// lease, and the upstream need not send it again. One more look, only when
// the tier answered the first one (a tier that is down or slow is not
// waited for twice).
type sharedAfterLease struct{ sharedSource }

func (s sharedAfterLease) open(ctx context.Context, f *fill, acc *access) (io.ReadCloser, int64, error) {
	if !f.sharedMiss || f.claim.Peer != nil || f.claim.Done == nil {
		return nil, 0, errNotHere
	}
	return s.sharedSource.open(ctx, f, acc)
}

// peerSource reads a blob from a fleet peer and, when the peer's stream
// breaks off (the holder died or restarted), goes on from the upstream
// where it was: a ranged download from that offset (Upstream.OpenFrom),
// or, without one, the whole download with its first bytes (those the
// peer sent) read again and skipped. The fill hashes one continuous
// stream whose readers never see a gap; content that does not verify is
// caught by the fill like any other.
type peerSource struct {
	ctx      context.Context
	c        *Cache
	d        digest.Digest
	peer     io.ReadCloser
	up       Upstream
	size     int64 // expected size, -1 if unknown
	off      int64
	fallback io.ReadCloser
}

func (p *peerSource) Read(b []byte) (int, error) {
	if p.fallback != nil {
		n, err := p.fallback.Read(b)
		p.off += int64(n)
		p.c.stats.bytesFromUpstream.Add(int64(n))
		return n, err
	}
	n, err := p.peer.Read(b)
	p.off += int64(n)
	if err == nil || (err == io.EOF && (p.size < 0 || p.off == p.size)) {
		return n, err
	}
	if p.ctx.Err() != nil {
		return n, err // the fill itself is over: no fallback
	}
	// The peer went away (or ended short): continue from upstream.
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	_ = p.peer.Close()
	p.c.log.Warn("cache: fleet peer stream broke off, going on from upstream", "digest", p.d, "offset", p.off, "error", err)
	body, size, oerr := p.openUpstream()
	if oerr != nil {
		return n, fmt.Errorf("peer stream broke off after %d bytes (%w) and the upstream failed: %w", p.off, err, oerr)
	}
	if p.size >= 0 && size >= 0 && size != p.size {
		_ = body.Close()
		return n, fmt.Errorf("%w: upstream announced %d bytes, the peer %d", ErrSizeMismatch, size, p.size)
	}
	p.fallback = body
	return n, nil
}

// openUpstream opens the blob upstream at p.off: ranged where the upstream
// can, else from the start with the first p.off bytes skipped.
func (p *peerSource) openUpstream() (io.ReadCloser, int64, error) {
	if p.up.OpenFrom != nil {
		return p.up.OpenFrom(p.ctx, p.off)
	}
	body, size, err := p.up.Open(p.ctx)
	if err != nil {
		return nil, 0, err
	}
	if _, err := io.CopyN(io.Discard, body, p.off); err != nil {
		_ = body.Close()
		return nil, 0, fmt.Errorf("skipping the %d bytes the peer sent: %w", p.off, err)
	}
	return body, size, nil
}

func (p *peerSource) Close() error {
	if p.fallback != nil {
		_ = p.peer.Close()
		return p.fallback.Close()
	}
	return p.peer.Close()
}
