package ecr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gocache "github.com/patrickmn/go-cache"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// Defaults for Options.
const (
	DefaultRefreshMargin = time.Hour
	DefaultRetryBudget   = 20 * time.Second
	// attemptTimeout bounds one API attempt, so a hung endpoint costs a retry
	// rather than the whole budget.
	attemptTimeout = 10 * time.Second
	// lockSlack is how much longer than its own retry budget a process waits
	// for another one that holds the lock and is minting.
	lockSlack = 15 * time.Second
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

// Token is a registry login minted by ECR.
type Token struct {
	Username  string
	Password  string
	ExpiresAt time.Time
	Registry  Registry
	// Identity is the ARN the credentials resolved to when the token was
	// minted; empty if STS could not say.
	Identity string
	// Stale is set when the token is inside the refresh margin and was
	// served only because minting a new one failed (throttling, outage).
	Stale bool
}

// Engine mints and caches ECR tokens. It is safe for concurrent use, and
// several processes sharing one cache directory cooperate through it.
type Engine struct {
	margin     time.Duration
	budget     time.Duration
	disk       diskCache
	mem        *gocache.Cache
	log        *slog.Logger
	registries map[string]config.ECRRegistry // by canonical host
	now        func() time.Time

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
		margin:     opts.RefreshMargin,
		budget:     opts.RetryBudget,
		disk:       diskCache{dir: filepath.Join(dir, "ecr")},
		mem:        gocache.New(gocache.NoExpiration, 0),
		log:        opts.Logger,
		registries: map[string]config.ECRRegistry{},
		now:        time.Now,
		clients:    map[string]*awsClients{},
	}
	if e.margin <= 0 {
		e.margin = DefaultRefreshMargin
	}
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
	for host, s := range opts.Registries {
		r, err := ParseHost(host)
		if err != nil {
			return nil, &Error{Kind: ErrConfig, Host: host, Reason: "not an ECR registry host", Fix: fixes[ErrConfig]}
		}
		if s.RoleARN != "" && !looksLikeRoleARN(s.RoleARN) {
			return nil, &Error{Kind: ErrConfig, Host: host, Reason: fmt.Sprintf("role_arn %q is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)", s.RoleARN), Fix: fixes[ErrConfig]}
		}
		e.registries[r.Host] = s
	}
	return e, nil
}

// CacheDir returns the tollgate cache directory: dir if set, else
// $TOLLGATE_CACHE_DIR, else $XDG_CACHE_HOME/tollgate, else ~/.cache/tollgate.
func CacheDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if d := os.Getenv("TOLLGATE_CACHE_DIR"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set TOLLGATE_CACHE_DIR or HOME: %w", err)
	}
	return filepath.Join(base, "tollgate"), nil
}

func looksLikeRoleARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws") &&
		parts[2] == "iam" && isAccountID(parts[4]) && strings.HasPrefix(parts[5], "role/") && len(parts[5]) > 5
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
	reg, err := ParseHost(host)
	if err != nil {
		return Token{}, err
	}
	settings := e.registries[reg.Host]
	src, err := resolveSource(ctx, settings.Profile, settings.RoleARN)
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			te.Host = reg.Host
		}
		return Token{}, err
	}
	sc := scopeOf(reg, src)
	id := sc.id()
	if !refresh {
		if v, ok := e.mem.Get(id); ok {
			if ent := v.(*entry); ent.freshAt(e.now(), e.margin) {
				return ent.token(reg, false), nil
			}
		}
		ent, err := e.disk.read(sc)
		if err != nil {
			e.log.Debug("ignoring token cache file", "file", e.disk.path(sc), "err", err)
		}
		if ent != nil && ent.freshAt(e.now(), e.margin) {
			e.mem.Set(id, ent, gocache.NoExpiration)
			return ent.token(reg, false), nil
		}
	}
	return e.obtain(ctx, reg, src, sc)
}

// obtain is the slow path: under the scope's lock file, re-read the cache
// (another process may have just minted) and mint only if still needed.
func (e *Engine) obtain(ctx context.Context, reg Registry, src source, sc scope) (Token, error) {
	tightened, err := e.disk.ensureDir()
	if err != nil {
		// An unwritable cache (read-only home, no HOME) costs sharing, not
		// the pull: mint for this process alone.
		e.log.Warn("token cache unusable; minting without it (set TOLLGATE_CACHE_DIR to a writable directory)",
			"dir", e.disk.dir, "err", err)
		return e.mintUncached(ctx, reg, src, sc)
	}
	if tightened {
		e.log.Warn("token cache directory was readable by other users; set it to 0700", "dir", e.disk.dir)
	}
	lockCtx, cancel := context.WithTimeout(ctx, e.budget+attemptTimeout+lockSlack)
	defer cancel()
	lock, err := securefile.LockFile(lockCtx, e.disk.lockPath(sc))
	switch {
	case errors.Is(err, securefile.ErrLockTimeout):
		return Token{}, &Error{Kind: ErrUnavailable, Host: reg.Host, Source: src.label,
			Reason: "timed out waiting for another tollgate process to mint the token",
			Fix:    "check for a hung docker-credential-tollgate process, then retry", Err: err}
	case err != nil:
		e.log.Warn("cannot lock the token cache; minting without it", "dir", e.disk.dir, "err", err)
		return e.mintUncached(ctx, reg, src, sc)
	}
	defer lock.Unlock()

	cached, err := e.disk.read(sc)
	if err != nil {
		e.log.Warn("replacing unusable token cache file", "file", e.disk.path(sc), "err", err)
	}
	if cached != nil && cached.freshAt(e.now(), e.margin) {
		e.mem.Set(sc.id(), cached, gocache.NoExpiration)
		return cached.token(reg, false), nil
	}

	ent, err := e.mint(ctx, reg, src)
	if err != nil {
		var te *Error
		if cached != nil && cached.validAt(e.now()) && errors.As(err, &te) && servesStale(te.Kind) {
			e.log.Warn("serving cached ECR token inside its refresh margin because minting failed",
				"registry", reg.Host, "expires_at", cached.ExpiresAt, "err", err.Error())
			return cached.token(reg, true), nil
		}
		return Token{}, err
	}
	ent.Source = src.key
	if err := e.disk.write(ent); err != nil {
		// The token is good; only sharing it failed. Say so and go on.
		e.log.Warn("cannot write the token cache; other processes will mint their own", "err", err)
	} else if n := e.disk.sweep(e.now()); n > 0 {
		e.log.Debug("removed old token cache files", "count", n)
	}
	e.mem.Set(sc.id(), ent, gocache.NoExpiration)
	if ent.ExpiresAt.Sub(e.now()) < e.margin {
		e.log.Warn("ECR issued a token that lives less than the refresh margin; every lookup will mint",
			"registry", reg.Host, "expires_at", ent.ExpiresAt, "refresh_margin", e.margin)
	}
	return ent.token(reg, false), nil
}

// mintUncached mints without the disk cache, keeping the token in process.
func (e *Engine) mintUncached(ctx context.Context, reg Registry, src source, sc scope) (Token, error) {
	ent, err := e.mint(ctx, reg, src)
	if err != nil {
		return Token{}, err
	}
	ent.Source = src.key
	e.mem.Set(sc.id(), ent, gocache.NoExpiration)
	return ent.token(reg, false), nil
}

// servesStale says which failures let a still-valid cached token be served.
func servesStale(kind error) bool {
	return kind == ErrThrottled || kind == ErrUnavailable || kind == ErrIMDSUnreachable
}

func (ent *entry) token(reg Registry, stale bool) Token {
	return Token{Username: ent.Username, Password: ent.Password, ExpiresAt: ent.ExpiresAt,
		Registry: reg, Identity: ent.Identity, Stale: stale}
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
func (e *Engine) Status(ctx context.Context, host string) (CacheStatus, error) {
	reg, err := ParseHost(host)
	if err != nil {
		return CacheStatus{}, err
	}
	settings := e.registries[reg.Host]
	src, err := resolveSource(ctx, settings.Profile, settings.RoleARN)
	if err != nil {
		return CacheStatus{}, err
	}
	sc := scopeOf(reg, src)
	st := CacheStatus{Registry: reg, Source: src.label, File: e.disk.path(sc)}
	ent, err := e.disk.read(sc)
	if err != nil {
		st.Problem = err.Error()
	}
	if ent != nil {
		st.Cached, st.Identity, st.ExpiresAt = true, ent.Identity, ent.ExpiresAt
	}
	return st, nil
}
