package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// Membership records. A host learns another host's peer URL only from a
// lease that host holds, so while a Node serves its peer listener it also
// keeps a member record in the lease engine: a lease of its own, keyed
// MemberPrefix + a random id per process, whose holder is its advertised
// URL. `tollgate doctor` lists them to ping every member. The records are
// for diagnosis only: no fill depends on them.
const (
	// MemberPrefix starts the key of every member record.
	MemberPrefix = "member-"
	// DefaultMemberTTL is how long a member record outlives the last
	// renewal of a process that went away without releasing it; it is
	// renewed every third of it.
	DefaultMemberTTL = 90 * time.Second
)

// Results counted in tollgate_fleet_member_writes_total.
const (
	memberOK    = "ok"    // the member record was written or renewed
	memberError = "error" // the lease engine failed: retried at the next tick
)

// newMemberKey returns a member record key that no other process uses, so
// that a restarted host never collides with its previous run's record
// (which simply expires).
func newMemberKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return MemberPrefix + hex.EncodeToString(b[:])
}

// keepMember writes this host's member record, renews it every third of
// MemberTTL until ctx ends, then releases it. A failing engine never stops
// anything: the failure is logged and counted, and the next tick tries
// again.
func (n *Node) keepMember(ctx context.Context) {
	m := member{n: n, key: newMemberKey()}
	m.write()
	t := time.NewTicker(n.opts.MemberTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.release()
			return
		case <-t.C:
			m.write()
		}
	}
}

// member is the state of keepMember's loop.
type member struct {
	n    *Node
	key  string
	l    lease.Lease
	have bool // l is ours and has not expired as far as we know
}

func (m *member) write() {
	n := m.n
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.LeaseTimeout)
	defer cancel()
	err := m.renewOrAcquire(ctx)
	if err != nil {
		n.metrics.memberWrites.WithLabelValues(memberError).Inc()
		n.log.Warn("fleet: writing this host's member record failed; retrying at the next tick (serving goes on; only doctor's view of the fleet misses this host)", "key", m.key, "error", err)
		return
	}
	n.metrics.memberWrites.WithLabelValues(memberOK).Inc()
}

func (m *member) renewOrAcquire(ctx context.Context) error {
	n := m.n
	if m.have {
		l, err := n.opts.Leases.Renew(ctx, m.l, n.opts.MemberTTL)
		switch {
		case err == nil:
			m.l = l
			return nil
		case errors.Is(err, lease.ErrLost):
			m.have = false // expired and cleaned up, or a renewal that landed unseen: write it anew
		case time.Now().After(m.l.Expires):
			m.have = false
			return err
		default:
			return err
		}
	}
	for attempt := 0; attempt < 2; attempt++ {
		l, err := n.opts.Leases.Acquire(ctx, m.key, n.opts.Advertise, n.opts.MemberTTL)
		if errors.Is(err, lease.ErrHeld) {
			// A write of ours that landed though we saw it fail: it
			// expires on its own; go on under a new key.
			m.key = newMemberKey()
			continue
		}
		if err != nil {
			return err
		}
		m.l, m.have = l, true
		return nil
	}
	return fmt.Errorf("member record %s: held, twice, under new random keys", m.key)
}

func (m *member) release() {
	if !m.have {
		return
	}
	n := m.n
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.LeaseTimeout)
	defer cancel()
	if err := n.opts.Leases.Release(ctx, m.l); err != nil && !errors.Is(err, lease.ErrLost) {
		n.log.Warn("fleet: releasing this host's member record failed; it expires on its own", "key", m.key, "error", err)
	}
}

// maxMemberList bounds the member records Members reads.
const maxMemberList = 1024

// Members lists the fleet's members from the member records in leases
// (opened in the fleet's namespace, Namespace(mode)): the distinct
// advertised URLs of the proxies serving now, sorted, at most max of them;
// more says there may be others. A proxy that went away without releasing
// its record stays listed until the record expires (DefaultMemberTTL), and
// a restarted one may briefly have two records: they name one URL.
func Members(ctx context.Context, leases lease.Store, max int) (urls []string, more bool, err error) {
	if max < 1 {
		return nil, false, fmt.Errorf("fleet: listing at most %d members: want at least 1", max)
	}
	limit := min(2*max, maxMemberList)
	ls, err := leases.List(ctx, MemberPrefix, limit)
	if err != nil {
		return nil, false, err
	}
	for _, l := range ls {
		urls = append(urls, l.Holder)
	}
	slices.Sort(urls)
	urls = slices.Compact(urls)
	more = len(ls) == limit || len(urls) > max
	if len(urls) > max {
		urls = urls[:max]
	}
	return urls, more, nil
}
