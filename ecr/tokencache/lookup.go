package tokencache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr/ecrhost"
)

// DefaultRefreshMargin: a cached token with less life left is not handed out.
const DefaultRefreshMargin = time.Hour

// Dir returns the tollgate cache directory: dir if set, else
// $TOLLGATE_CACHE_DIR, else $XDG_CACHE_HOME/tollgate, else
// ~/.cache/tollgate. ECR tokens live in its "ecr" subdirectory.
//
// A relative directory is refused: it would put tokens wherever the process
// happens to run (docker's working directory, a build context). A relative
// $XDG_CACHE_HOME is ignored, as the XDG spec says.
func Dir(dir string) (string, error) {
	if dir != "" {
		if !filepath.IsAbs(dir) {
			return "", fmt.Errorf("token cache directory %q (ecr.cache_dir) is a relative path, which would put tokens wherever tollgate happens to run: make it absolute", dir)
		}
		return dir, nil
	}
	if d := os.Getenv("TOLLGATE_CACHE_DIR"); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("TOLLGATE_CACHE_DIR=%q is a relative path, which would put tokens wherever tollgate happens to run: make it absolute", d)
		}
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "tollgate"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no cache directory for ECR tokens: neither HOME nor an absolute XDG_CACHE_HOME is set; set TOLLGATE_CACHE_DIR to an absolute path")
	}
	return filepath.Join(home, ".cache", "tollgate"), nil
}

// SettingsError is an invalid per-registry setting.
type SettingsError struct {
	Host   string
	Reason string
}

func (e *SettingsError) Error() string {
	return "invalid ECR registry settings for " + e.Host + ": " + e.Reason + ": fix the ecr.registries entry in the tollgate config file"
}

// NormalizeRegistries checks per-registry settings and keys them by
// canonical registry host.
func NormalizeRegistries(in map[string]config.ECRRegistry) (map[string]config.ECRRegistry, error) {
	out := make(map[string]config.ECRRegistry, len(in))
	for host, s := range in {
		r, err := ecrhost.Parse(host)
		if err != nil {
			return nil, &SettingsError{Host: host, Reason: "not an ECR registry host"}
		}
		if s.RoleARN != "" && !config.IsRoleARN(s.RoleARN) {
			return nil, &SettingsError{Host: host, Reason: fmt.Sprintf("role_arn %q is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)", s.RoleARN)}
		}
		out[r.Host] = s
	}
	return out, nil
}

// Lookup answers token requests from the disk cache, without any network
// call and without the AWS SDK.
type Lookup struct {
	Disk       Disk
	Margin     time.Duration                 // default DefaultRefreshMargin
	Registries map[string]config.ECRRegistry // by canonical host (NormalizeRegistries)
	Now        func() time.Time              // default time.Now
}

// Request is a token request worked out locally: the registry, the
// credential source that would serve it, and the scope of its token.
type Request struct {
	Registry ecrhost.Registry
	Source   Source
	Scope    Scope
}

// Resolve parses host and works out its source and scope. A host that is not
// ECR yields ecrhost.ErrNotECR.
func (l *Lookup) Resolve(host string) (Request, error) {
	reg, err := ecrhost.Parse(host)
	if err != nil {
		return Request{}, err
	}
	settings := l.Registries[reg.Host]
	src := ResolveSource(settings.Profile, settings.RoleARN)
	return Request{Registry: reg, Source: src, Scope: ScopeOf(reg, src)}, nil
}

// Fresh returns the cached entry for req if it has at least the refresh
// margin of life left, else nil. err says why a cache file that exists was
// not usable (corrupt, foreign); such a file is never served.
func (l *Lookup) Fresh(req Request) (*Entry, error) {
	ent, err := l.Disk.Read(req.Scope)
	if ent != nil && ent.FreshAt(l.now(), l.margin()) {
		return ent, nil
	}
	return nil, err
}

func (l *Lookup) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

func (l *Lookup) margin() time.Duration {
	if l.Margin <= 0 {
		return DefaultRefreshMargin
	}
	return l.Margin
}
