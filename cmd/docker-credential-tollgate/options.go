package main

import (
	"os"
	"path/filepath"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
)

// cacheLookup returns the warm-path reader of the ECR token cache, with the
// ecr section of the file named by $TOLLGATE_CONFIG when it is set (refresh
// margin, cache directory, per-registry profile and role), defaults
// otherwise. The file is read only when named, so the common case parses
// nothing. `tollgate ecr-token`, run on a miss, reads the same settings.
func cacheLookup() (tokencache.Lookup, error) {
	var ecrCfg config.ECR
	if os.Getenv(config.EnvConfig) != "" {
		cfg, err := config.Load("")
		if err != nil {
			return tokencache.Lookup{}, err
		}
		ecrCfg = cfg.ECR
	}
	dir, err := tokencache.Dir(ecrCfg.CacheDir)
	if err != nil {
		return tokencache.Lookup{}, err
	}
	registries, err := tokencache.NormalizeRegistries(ecrCfg.Registries)
	if err != nil {
		return tokencache.Lookup{}, err
	}
	return tokencache.Lookup{
		Disk:       tokencache.Disk{Dir: filepath.Join(dir, "ecr")},
		Margin:     ecrCfg.RefreshMargin,
		Registries: registries,
	}, nil
}
