package ecr

import (
	"github.com/spacelift-io/tollgate/ecr/ecrhost"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
)

// Registry is an ECR registry host, taken apart (see ecrhost.Registry).
type Registry = ecrhost.Registry

// Token is a registry login minted by ECR (see tokencache.Token).
type Token = tokencache.Token

// ErrNotECR is returned by ParseHost for anything that is not an ECR
// registry host. Callers treat it as "this host is not ours".
var ErrNotECR = ecrhost.ErrNotECR

// ParseHost recognises an ECR registry host: a bare host, host:port or URL,
// case-insensitive; look-alikes yield ErrNotECR. See ecrhost.Parse.
func ParseHost(s string) (Registry, error) { return ecrhost.Parse(s) }

// CacheDir returns the tollgate cache directory: dir if set, else
// $TOLLGATE_CACHE_DIR, else $XDG_CACHE_HOME/tollgate, else ~/.cache/tollgate.
func CacheDir(dir string) (string, error) { return tokencache.Dir(dir) }
