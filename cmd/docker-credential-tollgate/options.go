package main

import (
	"log/slog"
	"os"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr"
)

// engineOptions returns the token engine's settings: the ecr section of the
// file named by $TOLLGATE_CONFIG when it is set (refresh margin, cache
// directory, per-registry profile and role), defaults otherwise. The file is
// read only when named, so the common case costs no parsing.
func engineOptions(log *slog.Logger) (ecr.Options, error) {
	opts := ecr.Options{Logger: log}
	if os.Getenv(config.EnvConfig) == "" {
		return opts, nil
	}
	cfg, err := config.Load("")
	if err != nil {
		return opts, err
	}
	opts.RefreshMargin = cfg.ECR.RefreshMargin
	opts.CacheDir = cfg.ECR.CacheDir
	opts.Registries = cfg.ECR.Registries
	return opts, nil
}
