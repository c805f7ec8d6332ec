package config

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spacelift-io/tollgate/allowlist/pattern"
)

// validators check a normalised Config and return its problems located by
// key path; Parse turns them into file:line messages, in this order. A
// section's validator lives in config/<section>.go and is one line here:
//
//	func (c *Config) validateProxy() []FieldError { ... fieldErr("msg", "proxy", "listen") ... }
var validators = []func(*Config) []FieldError{
	(*Config).validateMode,
	(*Config).validateAllowlist,
	(*Config).validateDurations,
	(*Config).validateCacheSize,
	(*Config).validateLog,
	(*Config).validateECR,   // config/ecr.go
	(*Config).validateProxy, // config/proxy.go
	(*Config).validateAuthz, // config/authz.go
}

func (c *Config) validateMode() []FieldError {
	switch c.Mode {
	case ModePrivate, ModePublic:
		return nil
	}
	return []FieldError{fieldErr(fmt.Sprintf("mode %q is not valid: use %q or %q", string(c.Mode), ModePrivate, ModePublic), "mode")}
}

// validateAllowlist compiles every pattern, so that a bad one stops startup
// instead of being skipped.
func (c *Config) validateAllowlist() []FieldError {
	var fes []FieldError
	for i, s := range c.Allowlist {
		if _, err := pattern.Compile(s); err != nil {
			fes = append(fes, fieldErr(err.Error(), "allowlist", strconv.Itoa(i)))
		}
	}
	return fes
}

func (c *Config) validateDurations() []FieldError {
	var fes []FieldError
	check := func(d time.Duration, path ...string) {
		if d < 0 {
			fes = append(fes, fieldErr(fmt.Sprintf("%s must not be negative (got %s)", path[len(path)-1], d), path...))
		}
	}
	check(c.Proxy.ShutdownTimeout, "proxy", "shutdown_timeout")
	check(c.ECR.RefreshMargin, "ecr", "refresh_margin")
	return fes
}

func (c *Config) validateCacheSize() []FieldError {
	n, err := ParseSize(c.Proxy.Cache.MaxSize)
	if err != nil {
		return []FieldError{fieldErr(err.Error(), "proxy", "cache", "maxsize")}
	}
	if n <= 0 {
		return []FieldError{fieldErr("maxsize must be larger than zero", "proxy", "cache", "maxsize")}
	}
	return nil
}

func (c *Config) validateLog() []FieldError {
	var fes []FieldError
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		fes = append(fes, fieldErr(fmt.Sprintf("log level %q is not valid: use debug, info, warn or error", c.Log.Level), "log", "level"))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		fes = append(fes, fieldErr(fmt.Sprintf("log format %q is not valid: use text or json", c.Log.Format), "log", "format"))
	}
	return fes
}
