package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/spacelift-io/tollgate/ecr"
)

// Username is the user name of every ECR registry token.
const Username = "AWS"

// Token is a registry token and when it expires.
type Token struct {
	Username, Password string
	ExpiresAt          time.Time
	// Stale is set when minting a new token failed and the cached one, still
	// valid but inside the refresh margin, was returned instead.
	Stale bool
}

// Minter returns a token for an ECR registry host: the cached one while it
// is outside the refresh margin, else a newly minted one. The token engine
// (ecr.Engine) is the Minter in production.
type Minter interface {
	Refresh(ctx context.Context, host string) (Token, error)
}

// HostSource lists ECR hosts already present somewhere (a docker config's
// auths), so that they are refreshed without being named again.
type HostSource interface {
	Hosts(ctx context.Context) ([]string, error)
}

// Sink is where tokens are written. Write gets only the registries whose
// refresh succeeded and must keep every other entry as it was.
type Sink interface {
	Write(ctx context.Context, tokens map[string]Token) error
	// String names the destination in messages.
	String() string
}

// Result is the outcome of one registry's refresh.
type Result struct {
	Host      string
	ExpiresAt time.Time // zero when Err is set, unless Stale
	// Stale: minting failed, and the cached token (valid until ExpiresAt)
	// was written instead; Err says so. It counts as a failure.
	Stale bool
	Err   error
}

// ErrStale is the Err of a Result whose token could not be renewed.
var ErrStale = errors.New("AWS did not mint a new token (throttled or unavailable); the cached token, still valid, was kept")

// Report is the outcome of one refresh run.
type Report struct {
	Results []Result // sorted by host
	// WriteErr is set when the tokens could not be written; then no
	// registry counts as refreshed.
	WriteErr error
}

// OK reports whether every registry was refreshed and written.
func (r Report) OK() bool {
	if r.WriteErr != nil {
		return false
	}
	for _, res := range r.Results {
		if res.Err != nil {
			return false
		}
	}
	return true
}

// Failed counts the registries that were not refreshed (all of them when
// the write failed).
func (r Report) Failed() int {
	if r.WriteErr != nil {
		return len(r.Results)
	}
	n := 0
	for _, res := range r.Results {
		if res.Err != nil {
			n++
		}
	}
	return n
}

// ErrNoRegistries is returned when there is nothing to refresh.
var ErrNoRegistries = errors.New("no ECR registry to refresh: name one with --registry HOST or in the config file's refresh.registries, or add an ECR login to the docker config")

// Refresher refreshes a set of ECR registries into a Sink.
type Refresher struct {
	Minter Minter
	Sink   Sink
	// Registries are the hosts named by flags and configuration.
	Registries []string
	// Sources are docker configs whose ECR auths entries are refreshed too.
	Sources []HostSource
	// Timeout bounds each registry's refresh (default 2m).
	Timeout time.Duration
	// Parallel is how many registries are refreshed at once (default 4).
	Parallel int
	Logger   *slog.Logger
}

func (r *Refresher) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// CanonicalHosts validates hosts as ECR registry hosts and returns their
// canonical forms, sorted and without duplicates. The error names the first
// host that is not an ECR registry.
func CanonicalHosts(hosts []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		reg, err := ecr.ParseHost(h)
		if err != nil {
			return nil, fmt.Errorf("registry %q: %w", h, err)
		}
		if !seen[reg.Host] {
			seen[reg.Host] = true
			out = append(out, reg.Host)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Hosts returns the canonical hosts to refresh: the configured ones and the
// ECR hosts the sources hold. Entries of a source that are not ECR hosts
// are ignored; a source that cannot be read is an error, because writing to
// it would then be unsafe as well.
func (r *Refresher) Hosts(ctx context.Context) ([]string, error) {
	all, err := CanonicalHosts(r.Registries)
	if err != nil {
		return nil, err
	}
	for _, src := range r.Sources {
		found, err := src.Hosts(ctx)
		if err != nil {
			return nil, err
		}
		for _, h := range found {
			if reg, err := ecr.ParseHost(h); err == nil {
				all = append(all, reg.Host)
			}
		}
	}
	all, _ = CanonicalHosts(all)
	if len(all) == 0 {
		return nil, ErrNoRegistries
	}
	return all, nil
}

// Once refreshes every registry and writes the tokens it got. The error is
// set only when there was nothing to do or the hosts could not be listed;
// per-registry failures and a failed write are in the Report.
func (r *Refresher) Once(ctx context.Context) (Report, error) {
	hosts, err := r.Hosts(ctx)
	if err != nil {
		return Report{}, err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	par := r.Parallel
	if par <= 0 {
		par = 4
	}
	results := make([]Result, len(hosts))
	tokens := make([]Token, len(hosts))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			tok, err := r.Minter.Refresh(hctx, h)
			if err == nil && (tok.Password == "" || !tok.ExpiresAt.After(time.Now())) {
				err = fmt.Errorf("token engine returned an empty or expired token for %s", h)
			}
			results[i] = Result{Host: h, Err: err}
			if err == nil {
				results[i].ExpiresAt = tok.ExpiresAt
				tokens[i] = tok
				if tok.Stale {
					results[i].Stale = true
					results[i].Err = fmt.Errorf("%w: it expires at %s", ErrStale, tok.ExpiresAt.UTC().Format(time.RFC3339))
				}
			}
		}()
	}
	wg.Wait()
	good := map[string]Token{}
	for i, res := range results {
		if res.Err == nil || res.Stale {
			good[res.Host] = tokens[i]
		}
	}
	rep := Report{Results: results}
	if len(good) > 0 {
		// Tokens minted are written even if ctx ends now (SIGTERM): the
		// write is bounded by the sink's lock timeout, not by ctx.
		if err := r.Sink.Write(context.WithoutCancel(ctx), good); err != nil {
			rep.WriteErr = fmt.Errorf("write %s: %w", r.Sink, err)
		}
	}
	log := r.logger()
	for _, res := range rep.Results {
		if res.Err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "refresh failed", slog.String("registry", res.Host), slog.String("error", res.Err.Error()))
		} else if rep.WriteErr == nil {
			log.LogAttrs(ctx, slog.LevelInfo, "token written", slog.String("registry", res.Host), slog.Time("expires_at", res.ExpiresAt.UTC()), slog.String("to", r.Sink.String()))
		}
	}
	if rep.WriteErr != nil {
		log.LogAttrs(ctx, slog.LevelError, "write failed", slog.String("to", r.Sink.String()), slog.String("error", rep.WriteErr.Error()))
	}
	return rep, nil
}
