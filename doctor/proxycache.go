package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/proxy/cache"
)

// checkProxyCacheDir checks the proxy's content cache directory without
// opening it (the running proxy holds its lock): present or creatable,
// private to this user.
func checkProxyCacheDir(cfg *config.Config) Result {
	if cfg == nil {
		return Result{Status: StatusSkip, Detail: "the config did not load, so the proxy cache directory is unknown"}
	}
	dir := cfg.Proxy.Cache.Dir
	if dir == "" {
		return Result{Status: StatusFail, Detail: "no proxy cache directory: proxy.cache.dir is empty and neither $XDG_CACHE_HOME nor $HOME is set", Fix: "set proxy.cache.dir in the config file"}
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Result{Status: StatusOK, Detail: dir + " does not exist yet; the proxy creates it (mode 0700) when it starts"}
	}
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "make proxy.cache.dir readable by the user that runs the proxy"}
	}
	if !fi.IsDir() {
		return Result{Status: StatusFail, Detail: dir + " is not a directory", Fix: "point proxy.cache.dir at a directory"}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("%s: mode %04o lets other users read cached images, which can be private", dir, fi.Mode().Perm()),
			Fix: fmt.Sprintf("chmod 0700 %s", dir)}
	}
	if !ownedByMe(fi) {
		return Result{Status: StatusWarn, Detail: dir + " belongs to another user", Fix: "run doctor as the user that runs the proxy, or chown the directory to that user"}
	}
	return Result{Status: StatusOK, Detail: dir + ": private to this user (limit " + cfg.Proxy.Cache.MaxSize + ")"}
}

// VerifyProxyCache re-hashes every blob and manifest in the proxy's cache
// and removes damaged ones (cache.Verify). It reads the whole cache, so it
// is not bounded by the per-check timeout, and it needs the proxy stopped:
// one process at a time holds the cache.
func VerifyProxyCache(ctx context.Context, configPath string) Result {
	start := time.Now()
	r := verifyProxyCache(ctx, configPath)
	r.Name, r.Took = "proxy-cache-verify", time.Since(start)
	return r
}

func verifyProxyCache(ctx context.Context, configPath string) Result {
	cfg, err := config.Load(configPath)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "fix the config file first"}
	}
	dir := cfg.Proxy.Cache.Dir
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return Result{Status: StatusSkip, Detail: dir + " does not exist: nothing to verify"}
	}
	// MaxSize 0: opening for verification must not evict anything.
	c, err := cache.Open(ctx, cache.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "stop the proxy that uses this cache (systemctl stop tollgate-proxy), then run doctor --verify-cache again"}
	}
	defer c.Close(context.Background())
	checked, removed, err := c.Verify(ctx)
	if err != nil {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("verification stopped after %d items: %v", checked, err), Fix: "check the disk (dmesg, smartctl) and the directory's permissions"}
	}
	if len(removed) > 0 {
		return Result{Status: StatusWarn, Detail: fmt.Sprintf("%s: %d items checked, %d damaged ones removed (they are fetched again on the next pull): %v", dir, checked, len(removed), removed),
			Fix: "content changed on disk after it was verified: check the disk (dmesg, smartctl)"}
	}
	return Result{Status: StatusOK, Detail: fmt.Sprintf("%s: %d items checked, all match their digests", dir, checked)}
}
