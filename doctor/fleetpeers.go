package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/proxy/fleet"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// peerPingTimeout bounds each member's signed ping.
const peerPingTimeout = 2 * time.Second

// maxPeers bounds the members fleet-peers lists and pings.
const maxPeers = 64

// peerPing is one member's answer to a signed ping.
type peerPing struct {
	url  string
	self bool  // this host's own advertise URL
	err  error // nil: it answered 200 to this host's signature
}

// checkFleetPeers lists the member records of this host's fleet (the mode's
// namespace in the lease engine) and pings every member, this host's own
// advertise URL included, with a signed request.
func checkFleetPeers(ctx context.Context, cfg *config.Config, withProxy bool) Result {
	if cfg == nil {
		return Result{Status: StatusSkip, Detail: "the config did not load, so the fleet is unknown"}
	}
	f := cfg.Proxy.Fleet
	if f == nil {
		return Result{Status: StatusSkip, Detail: "no fleet configured (proxy.fleet)"}
	}
	if !withProxy {
		return Result{Status: StatusSkip, Detail: "runs with --proxy: which fleet peers answer this host"}
	}
	secret, err := fleet.ReadSecret(f.SecretFile)
	if err != nil {
		return Result{Status: StatusFail, Detail: "proxy.fleet.secret_file: " + err.Error(),
			Fix: "give this host the fleet's secret file, owned by the user that runs the proxy, mode 0600 (the same content on every member)"}
	}
	spec := fleetLeaseSpec(cfg)
	var driver string
	var params map[string]any
	if sh := cfg.Proxy.Shared; sh != nil {
		driver, params = sh.Driver, sh.Parameters
	}
	if spec == lease.SpecShared && driver == "filesystem" {
		root, _ := params["rootdirectory"].(string)
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			return Result{Status: StatusSkip, Detail: "the filesystem shared tier's rootdirectory is not there (see proxy-shared)"}
		}
	}
	ns := fleet.Namespace(string(cfg.Mode))
	store, err := lease.Open(ctx, spec, ns, driver, params)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "fix proxy.fleet.lease (and proxy.shared when it is \"shared\")"}
	}
	defer store.Close()
	where := fmt.Sprintf("%s, namespace %s", leaseStoreName(spec, cfg), ns)
	urls, more, err := fleet.Members(ctx, store, maxPeers)
	if err != nil {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("listing the fleet's member records in %s: %v", where, err),
			Fix: "check that the lease store is reachable and that the credentials may list and read it (see fleet-lease)"}
	}

	pings := pingPeers(ctx, secret, string(cfg.Mode), f.Advertise, urls)
	self := pings[0]
	// This host's own record is missing when the full list lacks it (past
	// the first maxPeers it may be there).
	selfMissing := !more && !slices.Contains(urls, f.Advertise)

	if len(urls) == 0 {
		d := fmt.Sprintf("no fleet member records in %s: no proxy of this fleet is serving, or they keep their leases in another engine than this host's config names", where)
		d += "; " + describePing(self)
		return Result{Status: StatusWarn, Detail: d,
			Fix: "start the proxies (tollgate proxy with proxy.fleet); give every member the same proxy.fleet.lease (and, for \"shared\", the same proxy.shared bucket or directory) and the same mode; a member record appears within seconds of a proxy's start"}
	}

	answered := 0
	var bad []peerPing
	var list []string
	for _, p := range pings {
		list = append(list, describePing(p))
		if p.err == nil {
			answered++
		} else {
			bad = append(bad, p)
		}
	}
	total := len(pings)
	detail := strings.Join(list, "; ")
	if more {
		detail += fmt.Sprintf(" (the first %d members; there may be more)", maxPeers)
	}
	if selfMissing {
		detail += "; this host has no member record: its proxy is not running with this config, or cannot write to the lease store (see fleet-lease and the proxy's log)"
	}
	if len(bad) == 0 && !selfMissing {
		return Result{Status: StatusOK, Detail: fmt.Sprintf("%d of %d fleet members answer a signed ping: %s", answered, total, detail)}
	}
	return Result{Status: StatusWarn,
		Detail: fmt.Sprintf("%d of %d fleet members answer a signed ping: %s", answered, total, detail),
		Fix:    peersFix(bad, selfMissing)}
}

// pingPeers pings self and every URL of urls at once, each bounded by
// peerPingTimeout; self comes first.
func pingPeers(ctx context.Context, secret fleet.Secret, mode, self string, urls []string) []peerPing {
	pings := []peerPing{{url: self, self: true}}
	for _, u := range urls {
		if u != self {
			pings = append(pings, peerPing{url: u})
		}
	}
	var wg sync.WaitGroup
	for i := range pings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, peerPingTimeout)
			defer cancel()
			pings[i].err = fleet.Ping(pctx, secret, mode, pings[i].url)
		}()
	}
	wg.Wait()
	return pings
}

// Why a ping failed, in the words of describePing and peersFix.
const (
	whyRefusedConn = "connection refused"
	whyTimeout     = "no answer in time"
	whySignature   = "refused the signature"
	whyOther       = "failed"
)

func pingWhy(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fleet.ErrRefused):
		return whySignature
	case errors.Is(err, syscall.ECONNREFUSED):
		return whyRefusedConn
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return whyTimeout
	default:
		return whyOther
	}
}

func describePing(p peerPing) string {
	name := p.url
	if p.self {
		name += " (this host)"
	}
	if p.err == nil {
		return name + " answers"
	}
	switch why := pingWhy(p.err); why {
	case whySignature:
		return name + " refused the signature (401/403: its secret or mode differs from this host's)"
	case whyTimeout:
		return fmt.Sprintf("%s: no answer within %s", name, peerPingTimeout)
	case whyRefusedConn:
		return name + ": connection refused"
	default:
		return fmt.Sprintf("%s: %v", name, p.err)
	}
}

// peersFix says what to do about the members that did not answer.
func peersFix(bad []peerPing, selfMissing bool) string {
	seen := map[string]bool{}
	var fixes []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			fixes = append(fixes, s)
		}
	}
	for _, p := range bad {
		switch why := pingWhy(p.err); {
		case p.self && why == whyRefusedConn:
			add("this host's peer listener does not answer at its advertise URL: start the proxy, or make proxy.fleet.advertise name the address and port of proxy.fleet.listen")
		case why == whySignature:
			add("a member that refuses the signature has another secret or mode: give every member the same proxy.fleet.secret_file content and the same mode")
		case why == whyRefusedConn:
			add("a member that refuses connections is not serving there: its proxy stopped (its record expires within 90s) or its proxy.fleet.advertise names the wrong address or port")
		case why == whyTimeout:
			add("a member that does not answer in time is unreachable from this host: let the fleet's hosts reach each other's proxy.fleet.listen port (security group, firewall), or the machine is gone (its record expires within 90s)")
		default:
			add("check that each failing member's proxy.fleet.advertise is its peer listener's URL")
		}
	}
	if selfMissing {
		add("start this host's proxy with this config; if it runs, check fleet-lease and the proxy's log for member record errors")
	}
	return strings.Join(fixes, "; ")
}
