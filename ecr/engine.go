package ecr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	gocache "github.com/patrickmn/go-cache"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// Defaults for Options.
const (
	DefaultRefreshMargin = tokencache.DefaultRefreshMargin
	DefaultRetryBudget   = 20 * time.Second
	// attemptTimeout bounds one API attempt, so a hung endpoint costs a retry
	// rather than the whole budget.
	attemptTimeout = 10 * time.Second
	// lockSlack is how much longer than its own retry budget a process waits
	// for another one that holds the lock and is minting.
	lockSlack = 15 * time.Second
	// staleRetryInterval is how long, after a failed refresh, refreshes make
	// one quick attempt before serving the still valid cached token.
	staleRetryInterval = time.Minute
	// quickAttemptTimeout bounds that one attempt.
	quickAttemptTimeout = 2 * time.Second
)

// Options configure an Engine. The zero value is usable.
type Options struct {
	// CacheDir is the token cache directory; tokens live in CacheDir/ecr.
	// Default $TOLLGATE_CACHE_DIR, else $XDG_CACHE_HOME/tollgate
	// (~/.cache/tollgate).
	CacheDir string
	// RefreshMargin: a cached token with less life left is not handed out
	// (default 1h); a new one is minted.
	RefreshMargin time.Duration
	// Registries holds optional per-registry settings (profile, role to
	// assume), keyed by ECR host in any form ParseHost accepts.
	Registries map[string]config.ECRRegistry
	// Logger receives warnings and debug details; never tokens. Default:
	// discard.
	Logger *slog.Logger
	// RetryBudget bounds the total time spent retrying a throttled or failing
	// mint (default 20s, or $TOLLGATE_ECR_RETRY_BUDGET).
	RetryBudget time.Duration
}

// Engine mints and caches ECR tokens. It is safe for concurrent use, and
// several processes sharing one cache directory cooperate through it.
type Engine struct {
	margin time.Duration
	budget time.Duration
	lookup tokencache.Lookup
	disk   *tokencache.Disk // &lookup.Disk
	mem    *gocache.Cache
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*awsClients
}

// NewEngine validates opts and returns an engine. It does no I/O: the cache
// directory is created on the first write, AWS configuration is loaded on the
// first cache miss.
func NewEngine(opts Options) (*Engine, error) {
	dir, err := CacheDir(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		margin:  opts.RefreshMargin,
		budget:  opts.RetryBudget,
		mem:     gocache.New(gocache.NoExpiration, 0),
		log:     opts.Logger,
		now:     time.Now,
		clients: map[string]*awsClients{},
	}
	if e.margin <= 0 {
		e.margin = DefaultRefreshMargin
	}
	registries, err := tokencache.NormalizeRegistries(opts.Registries)
	if err != nil {
		var se *tokencache.SettingsError
		if errors.As(err, &se) {
			return nil, &Error{Kind: ErrConfig, Host: se.Host, Reason: se.Reason, Fix: fixes[ErrConfig], Err: err}
		}
		return nil, err
	}
	e.lookup = tokencache.Lookup{
		Disk:       tokencache.Disk{Dir: filepath.Join(dir, "ecr")},
		Margin:     e.margin,
		Registries: registries,
		Now:        func() time.Time { return e.now() },
	}
	e.disk = &e.lookup.Disk
	if e.budget <= 0 {
		e.budget = DefaultRetryBudget
		if v := os.Getenv("TOLLGATE_ECR_RETRY_BUDGET"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("TOLLGATE_ECR_RETRY_BUDGET=%q: want a positive duration such as 20s", v)
			}
			e.budget = d
		}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// Token returns a token for the registry host, from the in-process cache,
// then the disk cache, then by minting one. A warm call makes no network
// call. It never returns a token with less than the refresh margin left,
// except while AWS throttles or fails and a cached token is still valid
// (Token.Stale).
func (e *Engine) Token(ctx context.Context, host string) (Token, error) {
	return e.token(ctx, host, false)
}

// Refresh makes sure the cache holds a token for host with more than the
// refresh margin left, minting one only if the cached token is inside the
// margin (or missing). It bypasses the in-process cache and reads the disk
// cache under its lock, so it sees what other processes wrote.
func (e *Engine) Refresh(ctx context.Context, host string) (Token, error) {
	return e.token(ctx, host, true)
}

func (e *Engine) token(ctx context.Context, host string, refresh bool) (Token, error) {
	req, err := e.lookup.Resolve(host)
	if err != nil {
		return Token{}, err
	}
	if !refresh {
		if v, ok := e.mem.Get(req.Scope.ID()); ok {
			if ent := v.(*tokencache.Entry); ent.FreshAt(e.now(), e.margin) {
				return ent.Token(req.Registry, false), nil
			}
		}
		ent, err := e.lookup.Fresh(req)
		if err != nil {
			e.log.Debug("ignoring token cache file", "file", e.disk.Path(req.Scope), "err", err)
		}
		if ent != nil {
			e.mem.Set(req.Scope.ID(), ent, gocache.NoExpiration)
			return ent.Token(req.Registry, false), nil
		}
		if req.Registry.Public {
			if te := readNegative(e.disk, req.Scope, e.now()); te != nil {
				te.Host, te.Source = req.Registry.Host, req.Source.Label
				return Token{}, te
			}
		}
	}
	return e.obtain(ctx, req)
}

// obtain is the slow path: under the scope's lock file, re-read the cache
// (another process may have just minted) and mint only if still needed.
func (e *Engine) obtain(ctx context.Context, req tokencache.Request) (Token, error) {
	reg, sc := req.Registry, req.Scope
	tightened, err := e.disk.EnsureDir()
	if err != nil {
		// An unwritable cache (read-only home, no HOME) costs sharing, not
		// the pull: mint for this process alone.
		e.log.Warn("token cache unusable; minting without it (set TOLLGATE_CACHE_DIR to a writable directory)",
			"dir", e.disk.Dir, "err", err)
		return e.mintUncached(ctx, req)
	}
	if tightened {
		e.log.Warn("token cache directory was readable by other users; set it to 0700", "dir", e.disk.Dir)
	}
	lockCtx, cancel := context.WithTimeout(ctx, e.budget+attemptTimeout+lockSlack)
	defer cancel()
	lock, err := securefile.LockFile(lockCtx, e.disk.LockPath(sc))
	switch {
	case errors.Is(err, securefile.ErrLockTimeout):
		return Token{}, &Error{Kind: ErrUnavailable, Host: reg.Host, Source: req.Source.Label,
			Reason: "timed out waiting for another tollgate process to mint the token",
			Fix:    "check for a hung docker-credential-tollgate process, then retry", Err: err}
	case err != nil:
		e.log.Warn("cannot lock the token cache; minting without it", "dir", e.disk.Dir, "err", err)
		return e.mintUncached(ctx, req)
	}
	defer lock.Unlock()

	cached, err := e.disk.Read(sc)
	if err != nil {
		e.log.Warn("replacing unusable token cache file", "file", e.disk.Path(sc), "err", err)
	}
	if cached != nil && cached.FreshAt(e.now(), e.margin) {
		e.mem.Set(sc.ID(), cached, gocache.NoExpiration)
		return cached.Token(reg, false), nil
	}

	// Right after a failed refresh one quick attempt will do: if AWS is
	// still failing the cached token is served at once.
	quick := cached != nil && e.now().Before(cached.RetryAfter) && cached.ValidAt(e.now())
	ent, err := e.mint(ctx, req, quick)
	if err != nil {
		var te *Error
		if cached != nil && cached.ValidAt(e.now()) && errors.As(err, &te) && te.Temporary() {
			e.log.Warn("serving cached ECR token inside its refresh margin because minting failed",
				"registry", reg.Host, "expires_at", cached.ExpiresAt, "err", err.Error())
			// Let the next lookups serve it straight away for a while.
			cached.RetryAfter = e.now().Add(staleRetryInterval)
			if err := e.disk.Write(cached); err != nil {
				e.log.Warn("cannot write the token cache", "err", err)
			}
			return cached.Token(reg, true), nil
		}
		if reg.Public {
			rememberNegative(e.disk, sc, err, e.now())
		}
		return Token{}, err
	}
	if reg.Public {
		forgetNegative(e.disk, sc)
	}
	if err := e.disk.Write(ent); err != nil {
		// The token is good; only sharing it failed. Say so and go on.
		e.log.Warn("cannot write the token cache; other processes will mint their own", "err", err)
	} else if n := e.disk.Sweep(e.now()); n > 0 {
		e.log.Debug("removed old token cache files", "count", n)
	}
	e.mem.Set(sc.ID(), ent, gocache.NoExpiration)
	if ent.ExpiresAt.Sub(e.now()) < e.margin {
		e.log.Warn("ECR issued a token that lives less than the refresh margin; every lookup will mint",
			"registry", reg.Host, "expires_at", ent.ExpiresAt, "refresh_margin", e.margin)
	}
	return ent.Token(reg, false), nil
}

// mintUncached mints without the disk cache, keeping the token in process.
func (e *Engine) mintUncached(ctx context.Context, req tokencache.Request) (Token, error) {
	ent, err := e.mint(ctx, req, false)
	if err != nil {
		return Token{}, err
	}
	e.mem.Set(req.Scope.ID(), ent, gocache.NoExpiration)
	return ent.Token(req.Registry, false), nil
}

// CacheStatus describes, without any network call, what the engine would use
// for a registry: for operators (tollgate doctor) and tests.
type CacheStatus struct {
	Registry  Registry
	Source    string    // human-readable credential source
	File      string    // the cache file for this registry's scope
	Cached    bool      // a usable entry is on disk
	Identity  string    // identity recorded with the cached token
	ExpiresAt time.Time // expiry of the cached token
	Problem   string    // why the file on disk is not usable, if it is not
}

// Status reports the cache state for host without minting or calling AWS.
func (e *Engine) Status(_ context.Context, host string) (CacheStatus, error) {
	req, err := e.lookup.Resolve(host)
	if err != nil {
		return CacheStatus{}, err
	}
	st := CacheStatus{Registry: req.Registry, Source: req.Source.Label, File: e.disk.Path(req.Scope)}
	ent, err := e.disk.Read(req.Scope)
	if err != nil {
		st.Problem = err.Error()
	}
	if ent != nil {
		st.Cached, st.Identity, st.ExpiresAt = true, ent.Identity, ent.ExpiresAt
	}
	return st, nil
}
