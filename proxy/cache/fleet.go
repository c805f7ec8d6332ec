package cache

import (
	"context"
	"errors"
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

// PeerBlob returns a reader of blob d for another host of the fleet: the
// committed content, or the fill in progress (the peer is one more reader
// of it), whichever repository it was fetched for. It never goes upstream
// and never starts a fill: ErrNotFound when d is neither cached nor being
// filled. The fleet's peer listener must admit only fleet members, each of
// which proves its repository's access upstream before asking.
func (c *Cache) PeerBlob(ctx context.Context, d digest.Digest) (*Reader, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if e := c.entries[d]; e != nil {
			r, err := c.openEntryLocked(ctx, e) // unlocks
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return r, err
		}
		if f := c.fills[d]; f != nil {
			f.readers++
			c.mu.Unlock()
			c.stats.joins.Add(1)
			return c.streamReader(ctx, f)
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	return nil, fmt.Errorf("cache: peer read of %s: content keeps disappearing (evicted while reading?)", d)
}

// peerSource reads a blob from a fleet peer and, when the peer's stream
// breaks off (the holder died or restarted), goes on from the upstream at
// the same offset: the upstream body's first bytes are skipped, so the fill
// hashes one continuous stream and its readers never see a gap. Content
// that does not verify is caught by the fill like any other.
type peerSource struct {
	ctx      context.Context
	peer     io.ReadCloser
	up       Upstream
	size     int64 // expected size, -1 if unknown
	off      int64
	fallback io.ReadCloser
	// onFallback is told why the peer was left (for the log and metrics).
	onFallback func(error)
}

func (p *peerSource) Read(b []byte) (int, error) {
	if p.fallback != nil {
		n, err := p.fallback.Read(b)
		p.off += int64(n)
		return n, err
	}
	n, err := p.peer.Read(b)
	p.off += int64(n)
	if err == nil || (err == io.EOF && (p.size < 0 || p.off == p.size)) {
		return n, err
	}
	if perr := p.ctx.Err(); perr != nil {
		return n, err // the fill itself is over: no fallback
	}
	// The peer went away (or ended short): continue from upstream.
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	_ = p.peer.Close()
	if p.onFallback != nil {
		p.onFallback(err)
	}
	body, size, oerr := p.up.Open(p.ctx)
	if oerr != nil {
		return n, fmt.Errorf("peer stream broke off after %d bytes (%w) and the upstream failed: %w", p.off, err, oerr)
	}
	if p.size >= 0 && size >= 0 && size != p.size {
		_ = body.Close()
		return n, fmt.Errorf("%w: upstream announced %d bytes, the peer %d", ErrSizeMismatch, size, p.size)
	}
	if _, serr := io.CopyN(io.Discard, body, p.off); serr != nil {
		_ = body.Close()
		return n, fmt.Errorf("peer stream broke off after %d bytes (%w); skipping them upstream: %w", p.off, err, serr)
	}
	p.fallback = body
	return n, nil
}

func (p *peerSource) Close() error {
	if p.fallback != nil {
		_ = p.peer.Close()
		return p.fallback.Close()
	}
	return p.peer.Close()
}
