package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spacelift-io/tollgate/allowlist"
	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/dockerconfig"
)

func checkConfig(path string) (Result, *config.Config) {
	name := path
	if name == "" {
		name = os.Getenv(config.EnvConfig)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "correct the config file at the line named (docs/config.md lists every key), or point --config / $" + config.EnvConfig + " at the right file"}, nil
	}
	if name == "" {
		name = "built-in default (no --config, $" + config.EnvConfig + " not set)"
	}
	return Result{Status: StatusOK, Detail: fmt.Sprintf("%s loads; mode %s", name, cfg.Mode)}, cfg
}

func checkAllowlist(cfg *config.Config) Result {
	if cfg == nil {
		return Result{Status: StatusSkip, Detail: "the config did not load, so the allowlist is unknown"}
	}
	p, err := allowlist.New(cfg.Allowlist)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "correct the allowlist patterns in the config file (docs/allowlist.md)"}
	}
	pats := p.Patterns()
	if len(pats) == 0 {
		return Result{Status: StatusWarn, Detail: "the allowlist is empty: every pull is denied", Fix: "list the registries that may be pulled under allowlist:, or remove the key for the default list"}
	}
	return Result{Status: StatusOK, Detail: fmt.Sprintf("%d patterns: %s", len(pats), strings.Join(pats, ", "))}
}

// ownedByMe reports whether fi belongs to the current user.
func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Getuid()
}

func checkConfigDir(dir string) Result {
	if dir == "" {
		return Result{Status: StatusSkip, Detail: "$" + dockerconfig.EnvConfigDir + " is not set: the helper serves ECR tokens only, no other logins, and refresh needs --output"}
	}
	if err := dockerconfig.CheckDir(dir); err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "set $" + dockerconfig.EnvConfigDir + " to an absolute path"}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("%s: %v", dir, err), Fix: fmt.Sprintf("create it for the user that runs tollgate: install -d -m 0700 %s", dir)}
	}
	if !fi.IsDir() {
		return Result{Status: StatusFail, Detail: dir + " is not a directory", Fix: "point $" + dockerconfig.EnvConfigDir + " at a directory"}
	}
	var problems []string
	if fi.Mode().Perm()&0o077 != 0 {
		problems = append(problems, fmt.Sprintf("directory mode %04o lets other users in", fi.Mode().Perm()))
	}
	if !ownedByMe(fi) {
		problems = append(problems, "directory belongs to another user")
	}
	path := filepath.Join(dir, dockerconfig.ConfigFileName)
	detail := path + " does not exist yet (no logins)"
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			problems = append(problems, fmt.Sprintf("%s mode %04o lets other users read the logins", dockerconfig.ConfigFileName, fi.Mode().Perm()))
		}
		if !ownedByMe(fi) {
			problems = append(problems, dockerconfig.ConfigFileName+" belongs to another user")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return Result{Status: StatusFail, Detail: err.Error(), Fix: "make " + path + " readable by the user that runs tollgate (and by no one else)"}
		}
		f, err := dockerconfig.Parse(path, data)
		if err != nil {
			return Result{Status: StatusFail, Detail: err.Error(), Fix: "fix the JSON at the line named, or move the file away and log in again"}
		}
		detail = fmt.Sprintf("%s: %d logins", path, len(f.Logins()))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "make " + path + " readable by the user that runs tollgate"}
	}
	if len(problems) > 0 {
		return Result{Status: StatusFail, Detail: detail + "; " + strings.Join(problems, "; "),
			Fix: fmt.Sprintf("chown -R $(id -un) %s && chmod 0700 %s && chmod 0600 %s", dir, dir, path)}
	}
	return Result{Status: StatusOK, Detail: detail + "; private to this user"}
}

// cacheDirOf resolves the token cache directory as the ECR engine does.
func cacheDirOf(cfg *config.Config) string {
	if cfg != nil && cfg.ECR.CacheDir != "" {
		return cfg.ECR.CacheDir
	}
	if d := os.Getenv("TOLLGATE_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tollgate")
	}
	return ""
}

func checkCacheDir(dir string) Result {
	if dir == "" {
		return Result{Status: StatusFail, Detail: "no cache directory: neither ecr.cache_dir, $TOLLGATE_CACHE_DIR, $XDG_CACHE_HOME nor $HOME is set", Fix: "set TOLLGATE_CACHE_DIR to a directory private to this user"}
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// It is created on first use; check that it can be.
		parent := filepath.Dir(dir)
		for {
			if _, err := os.Stat(parent); err == nil || parent == filepath.Dir(parent) {
				break
			}
			parent = filepath.Dir(parent)
		}
		if err := writable(parent); err != nil {
			return Result{Status: StatusFail, Detail: fmt.Sprintf("%s does not exist and cannot be created: %v", dir, err), Fix: fmt.Sprintf("create it: install -d -m 0700 %s (as the user that runs tollgate), or set TOLLGATE_CACHE_DIR", dir)}
		}
		return Result{Status: StatusOK, Detail: dir + " does not exist yet; it will be created (mode 0700) on first use"}
	}
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "set TOLLGATE_CACHE_DIR to a directory private to this user"}
	}
	if !fi.IsDir() {
		return Result{Status: StatusFail, Detail: dir + " is not a directory", Fix: "set TOLLGATE_CACHE_DIR to a directory"}
	}
	var problems []string
	if fi.Mode().Perm()&0o077 != 0 {
		problems = append(problems, fmt.Sprintf("mode %04o lets other users read cached tokens", fi.Mode().Perm()))
	}
	if !ownedByMe(fi) {
		problems = append(problems, "it belongs to another user")
	}
	if err := writable(dir); err != nil {
		problems = append(problems, "not writable: "+err.Error())
	}
	if len(problems) > 0 {
		return Result{Status: StatusFail, Detail: dir + ": " + strings.Join(problems, "; "), Fix: fmt.Sprintf("chown -R $(id -un) %s && chmod 0700 %s", dir, dir)}
	}
	return Result{Status: StatusOK, Detail: dir + ": private to this user and writable"}
}

// writable creates and removes a file in dir.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".tollgate-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// shownURL is s as messages show it: the password of the URL's user-info
// replaced by "xxxxx", and, when s does not parse, everything up to the
// last '@' of its authority.
func shownURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	authority := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		authority = rest[:j]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		return scheme + "xxxxx" + rest[at:]
	}
	return s
}

func checkProxy(ctx context.Context, client *http.Client, base string) Result {
	if base == "" {
		return Result{Status: StatusSkip, Detail: "no --proxy URL given"}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("%q is not an http(s) URL", shownURL(base)), Fix: "pass the proxy's base URL, e.g. --proxy http://127.0.0.1:5000"}
	}
	shown := strings.TrimRight(u.Redacted(), "/")
	var lastErr error
	for _, path := range []string{"/healthz", "/v2/"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
		if err != nil {
			return Result{Status: StatusFail, Detail: err.Error()}
		}
		resp, err := client.Do(req)
		if err != nil {
			lastErr = err
			break // the same host and port: a second path will not answer either
		}
		resp.Body.Close()
		switch {
		case path == "/healthz" && resp.StatusCode == http.StatusOK:
			return Result{Status: StatusOK, Detail: shown + path + " answers 200"}
		case path == "/v2/" && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized):
			if resp.Header.Get("Docker-Distribution-API-Version") == "" {
				return Result{Status: StatusWarn, Detail: fmt.Sprintf("%s%s answers %d but not as a registry (no Docker-Distribution-API-Version header)", shown, path, resp.StatusCode), Fix: "check that --proxy names the tollgate proxy and not another service"}
			}
			return Result{Status: StatusOK, Detail: fmt.Sprintf("%s%s answers %d as a registry", shown, path, resp.StatusCode)}
		}
		lastErr = fmt.Errorf("%s%s answered %s", shown, path, resp.Status)
	}
	fix := "start the proxy (systemctl start tollgate-proxy, or tollgate proxy --listen ADDR) and check --proxy names its address"
	if errors.Is(lastErr, context.DeadlineExceeded) || strings.Contains(fmt.Sprint(lastErr), "Timeout") {
		fix = "the proxy accepted the connection but did not answer: see its logs (it may be overloaded or stuck), or a firewall drops its replies"
	}
	return Result{Status: StatusFail, Detail: "proxy does not answer: " + lastErr.Error(), Fix: fix}
}
