package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var briefAllowlist = []string{
	"*.azurecr.io",
	"<account>.dkr.ecr.<region>.amazonaws.com",
	"docker.io",
	"*-docker.pkg.dev",
	"gcr.io",
	"*.gcr.io",
	"ghcr.io",
	"public.ecr.aws",
	"quay.io",
	"registry.gitlab.com",
	"registry.hub.docker.com",
}

func TestDefault(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/var/cache/test")
	c := Default()
	if !slices.Equal(c.Allowlist, briefAllowlist) {
		t.Errorf("default allowlist = %q, want %q", c.Allowlist, briefAllowlist)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", c.Mode, ModePrivate},
		{"proxy.listen", c.Proxy.Listen, "127.0.0.1:5000"},
		{"proxy.cache.dir", c.Proxy.Cache.Dir, "/var/cache/test/tollgate/proxy"},
		{"proxy.cache.maxsize", c.Proxy.Cache.MaxSize, "50GiB"},
		{"proxy.shutdown_timeout", c.Proxy.ShutdownTimeout, 30 * time.Second},
		{"ecr.refresh_margin", c.ECR.RefreshMargin, time.Hour},
		{"ecr.cache_dir", c.ECR.CacheDir, ""},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("default %s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// Each call is a fresh copy.
	c.Allowlist[0] = "changed"
	if Default().Allowlist[0] != briefAllowlist[0] {
		t.Error("Default() shares its allowlist between calls")
	}
}

func TestCacheDirWithoutXDG(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/spacelift")
	if got := Default().Proxy.Cache.Dir; got != "/home/spacelift/.cache/tollgate/proxy" {
		t.Errorf("cache dir = %q", got)
	}
	t.Setenv("XDG_CACHE_HOME", "relative/cache") // ignored, as the XDG spec says
	if got := Default().Proxy.Cache.Dir; got != "/home/spacelift/.cache/tollgate/proxy" {
		t.Errorf("cache dir with a relative XDG_CACHE_HOME = %q", got)
	}
	// An explicit dir is kept.
	c, err := Parse([]byte("proxy:\n  cache:\n    dir: /srv/cache\n"), "config.yaml")
	if err != nil || c.Proxy.Cache.Dir != "/srv/cache" {
		t.Errorf("explicit cache dir: %v, %v", c, err)
	}
}

func TestParseKeepsDefaultsForMissingKeys(t *testing.T) {
	c, err := Parse([]byte("proxy:\n  listen: 127.0.0.1:6000\n"), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.Listen != "127.0.0.1:6000" || !slices.Equal(c.Allowlist, briefAllowlist) ||
		c.Proxy.Cache.MaxSize != "50GiB" || c.ECR.RefreshMargin != time.Hour || c.Mode != ModePrivate {
		t.Errorf("partial config not completed with defaults: %+v", c)
	}
	// Normalize is idempotent.
	before := *c
	c.Normalize()
	if c.Proxy != before.Proxy || c.ECR.RefreshMargin != before.ECR.RefreshMargin || !slices.Equal(c.Allowlist, before.Allowlist) {
		t.Error("Normalize changed a normalised config")
	}
}

func TestParseAllowlistForms(t *testing.T) {
	c, err := Parse([]byte("allowlist: []\n"), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Allowlist == nil || len(c.Allowlist) != 0 {
		t.Errorf("allowlist: [] gave %q, want an empty list (deny all)", c.Allowlist)
	}
	c, err = Parse([]byte("allowlist:\n  - docker.io\n  - \"*.azurecr.io\"\n  - ghcr.io/myorg/*\n"), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker.io", "*.azurecr.io", "ghcr.io/myorg/*"}; !slices.Equal(c.Allowlist, want) {
		t.Errorf("allowlist = %q, want %q", c.Allowlist, want)
	}
	for _, empty := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		c, err := Parse([]byte(empty), "config.yaml")
		if err != nil {
			t.Errorf("Parse(%q): %v", empty, err)
			continue
		}
		if !slices.Equal(c.Allowlist, briefAllowlist) {
			t.Errorf("Parse(%q) allowlist = %q", empty, c.Allowlist)
		}
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // each a full line of the error
	}{
		{"unknown top key", "mode: private\n\nalowlist:\n  - docker.io\n",
			[]string{`config.yaml:3: unknown key "alowlist" (did you mean "allowlist"?)`}},
		{"unknown nested key", "proxy:\n  listen: 127.0.0.1:5000\n  cache:\n    maxsze: 1GiB\n",
			[]string{`config.yaml:4: unknown key "maxsze" in proxy.cache (did you mean "maxsize"?)`}},
		{"unknown key without suggestion", "zzzzzz: 1\n",
			[]string{`config.yaml:1: unknown key "zzzzzz"; known keys: allowlist, authz, ecr, log, mode, proxy, refresh, upstreams`}},
		{"unknown key in a map entry", "upstreams:\n  ghcr.io:\n    endpiont: http://127.0.0.1:5003\n",
			[]string{`config.yaml:3: unknown key "endpiont" in upstreams."ghcr.io" (did you mean "endpoint"?)`}},
		{"two unknown keys", "mode: private\nfoo: 1\nlog:\n  lvl: debug\n",
			[]string{`config.yaml:2: unknown key "foo"; known keys: allowlist, authz, ecr, log, mode, proxy, refresh, upstreams`, `config.yaml:4: unknown key "lvl" in log (did you mean "level"?)`}},
		{"invalid pattern", "allowlist:\n  - docker.io\n  - \"*.io\"\n",
			[]string{`config.yaml:3: invalid allowlist pattern "*.io": too broad: a pattern with a wildcard must name at least its last two labels literally (*.example.com, not *.com)`}},
		{"invalid mode", "mode: shared\n",
			[]string{`config.yaml:1: mode "shared" is not valid: use "private" or "public"`}},
		{"duration without unit", "proxy:\n  shutdown_timeout: 30\n",
			[]string{`config.yaml:2: invalid duration "30": write a number with a unit, e.g. 30s, 5m or 1h`}},
		{"bad duration", "ecr:\n  refresh_margin: soon\n",
			[]string{`config.yaml:2: invalid duration "soon": write a number with a unit, e.g. 30s, 5m or 1h`}},
		{"negative duration", "ecr:\n  refresh_margin: -1h\n",
			[]string{`config.yaml:2: refresh_margin must not be negative (got -1h0m0s)`}},
		{"ambiguous size", "proxy:\n  cache:\n    maxsize: 50G\n",
			[]string{`config.yaml:3: invalid size "50G": "g" is ambiguous; write 50GiB (binary) or 50GB (decimal)`}},
		{"several value problems", "mode: Public\nlog:\n  level: loud\n  format: xml\n",
			[]string{`config.yaml:1: mode "Public" is not valid: use "private" or "public"`,
				`config.yaml:3: log level "loud" is not valid: use debug, info, warn or error`,
				`config.yaml:4: log format "xml" is not valid: use text or json`}},
		{"allowlist as a string", "allowlist: docker.io\n",
			[]string{`config.yaml:1: expected a list, found str "docker.io"`}},
		{"section as a list", "proxy:\n  - listen\n",
			[]string{`config.yaml:2: expected a mapping of keys, found a seq`}},
		{"mode without a value", "mode:\nallowlist: [docker.io]\n",
			[]string{`config.yaml:1: mode: has no value; write mode: private or mode: public, or remove the key for the default (private)`}},
		{"null allowlist", "mode: private\nallowlist:\n",
			[]string{`config.yaml:2: allowlist: has no entries; list patterns, write allowlist: [] to deny every pull, or remove the key for the default list`}},
		{"syntax error", "mode: private\nfoo: bar: baz\n",
			[]string{`config.yaml:2: mapping values are not allowed in this context`}},
		{"tab indent", "allowlist:\n\t- x\n",
			[]string{`config.yaml:2: found character that cannot start any token`}},
		{"duplicate key", "mode: private\nmode: public\n",
			[]string{`config.yaml:2: mapping key "mode" already defined at line 1`}},
		{"two documents", "mode: private\n---\nmode: public\n",
			[]string{`config.yaml:2: more than one YAML document ('---'); a config file holds one`}},
		{"unknown key through a merge key", "base: &b\n  lisen: x\n",
			[]string{`config.yaml:1: unknown key "base"; known keys: allowlist, authz, ecr, log, mode, proxy, refresh, upstreams`}},
		{"unknown key inside a merged mapping", "proxy:\n  <<: {listen: 127.0.0.1:1, lisen: x}\n",
			[]string{`config.yaml:2: unknown key "lisen" in proxy (did you mean "listen"?)`}},
		{"unknown key behind an alias", "upstreams:\n  a.example: &u {endpoint: http://127.0.0.1:1}\n  b.example: *u\n  c.example: {endpont: x}\n",
			[]string{`config.yaml:4: unknown key "endpont" in upstreams."c.example" (did you mean "endpoint"?)`}},
		{"ecr registry key not an ECR host", "ecr:\n  registries:\n    ghcr.io:\n      profile: ci\n",
			[]string{`config.yaml:4: "ghcr.io" is not an Amazon ECR registry host (ACCOUNT.dkr.ecr.REGION.amazonaws.com or public.ecr.aws)`}},
		{"bad role_arn", "ecr:\n  registries:\n    111111111111.dkr.ecr.us-east-1.amazonaws.com:\n      role_arn: arn:aws:iam::111111111111:user/ci\n",
			[]string{`config.yaml:4: role_arn "arn:aws:iam::111111111111:user/ci" is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)`}},
		{"relative ecr cache_dir", "ecr:\n  cache_dir: cache\n",
			[]string{`config.yaml:2: cache_dir "cache" is a relative path, which would put tokens wherever tollgate happens to run: make it absolute`}},
		{"top level list", "- docker.io\n",
			[]string{`config.yaml:1: the top level must be a mapping of keys (mode:, allowlist:, proxy:, ...)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "config.yaml")
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "config.yaml" {
				t.Errorf("error is not a *config.Error for config.yaml: %#v", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if !slices.Equal(lines, c.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestParseAcceptsFullConfig(t *testing.T) {
	const full = `
mode: public
allowlist:
  - docker.io/library/*
  - "*.azurecr.io"
  - ghcr.io/myorg/*
  - 127.0.0.1:5001
proxy:
  listen: 127.0.0.1:5555
  cache:
    dir: /var/cache/tollgate
    maxsize: 500MB
  shared:
    driver: s3
    parameters:
      bucket: my-bucket
      region: us-east-1
      anything: [goes, here]
  shutdown_timeout: 1m
upstreams:
  ghcr.io:
    endpoint: http://127.0.0.1:5003
    ca_file: /etc/ssl/extra.pem
ecr:
  refresh_margin: 2h
  cache_dir: /var/cache/tollgate-ecr
  registries:
    123456789012.dkr.ecr.us-east-1.amazonaws.com:
      role_arn: arn:aws:iam::123456789012:role/puller
    210987654321.dkr.ecr.eu-west-1.amazonaws.com:
      profile: other
refresh:
  registries:
    - 123456789012.dkr.ecr.us-east-1.amazonaws.com
log:
  level: debug
  format: json
  file: /var/log/tollgate.log
`
	c, err := Parse([]byte(full), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModePublic || len(c.Allowlist) != 4 || c.Proxy.Listen != "127.0.0.1:5555" ||
		c.Proxy.Cache.MaxSize != "500MB" || c.Proxy.Shared == nil || c.Proxy.Shared.Parameters["bucket"] != "my-bucket" ||
		c.Proxy.ShutdownTimeout != time.Minute || c.Upstreams["ghcr.io"].CAFile != "/etc/ssl/extra.pem" ||
		c.ECR.RefreshMargin != 2*time.Hour || c.ECR.Registries["210987654321.dkr.ecr.eu-west-1.amazonaws.com"].Profile != "other" ||
		len(c.Refresh.Registries) != 1 || c.Log.File != "/var/log/tollgate.log" {
		t.Errorf("full config decoded wrongly: %+v", c)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env.yaml")
	flagFile := filepath.Join(dir, "flag.yaml")
	badFile := filepath.Join(dir, "bad.yaml")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(envFile, "allowlist: [from-env.example.com]\n")
	write(flagFile, "allowlist: [from-flag.example.com]\n")
	write(badFile, "mode: private\nallowlist:\n  - ok.example.com\n  - \"*.*\"\n")

	t.Setenv(EnvConfig, "")
	c, err := Load("")
	if err != nil || !slices.Equal(c.Allowlist, briefAllowlist) {
		t.Errorf("Load(\"\") without %s = %v, %v; want the default", EnvConfig, c, err)
	}
	t.Setenv(EnvConfig, envFile)
	if c, err := Load(""); err != nil || !slices.Equal(c.Allowlist, []string{"from-env.example.com"}) {
		t.Errorf("Load(\"\") with %s = %v, %v", EnvConfig, c, err)
	}
	if c, err := Load(flagFile); err != nil || !slices.Equal(c.Allowlist, []string{"from-flag.example.com"}) {
		t.Errorf("Load(flag) = %v, %v; the flag must win over the environment", c, err)
	}
	_, err = Load(badFile)
	if err == nil || err.Error() != badFile+`:4: invalid allowlist pattern "*.*": too broad: a pattern with a wildcard must name at least its last two labels literally (*.example.com, not *.com)` {
		t.Errorf("Load(bad) error = %v", err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) error = %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	write(big, "# "+strings.Repeat("x", maxFileSize)+"\n")
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) error = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0":                   0,
		"1073741824":          1 << 30,
		"500MB":               500_000_000,
		"500mb":               500_000_000,
		"50GiB":               50 << 30,
		"50 GiB":              50 << 30,
		"50gib":               50 << 30,
		"1.5KiB":              1536,
		"1.5kb":               1500,
		"0.1B":                0,
		"1TB":                 1_000_000_000_000,
		"2PiB":                2 << 50,
		"8191PiB":             8191 << 50,
		"123B":                123,
		" 7 MiB ":             7 << 20,
		"9223372036854775807": 9223372036854775807,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "50G", "50k", "50 gigabytes", "1.2.3MB", ".5GB", "5.GB", "1e9", "0x10", "8192PiB", "9223372036854775808", "50GiB extra", "５0GiB"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, got)
		}
	}
}

// docs/config.md prints the built-in default; it must be the real one.
func TestDocsShowTheDefault(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(DefaultYAML())+"```\n") {
		t.Error("docs/config.md does not show config/default.yaml as it is; copy it again")
	}
}

// nestedMerges returns a config whose proxy mapping merges, level after
// level, the level below it four times (duplicate "<<" keys): a few
// kilobytes that spell billions of paths through the merge keys.
func nestedMerges(levels int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "proxy: &b%d\n", levels)
	var emit func(i, indent int)
	emit = func(i, indent int) {
		pad := strings.Repeat("  ", indent)
		if i == 0 {
			fmt.Fprintf(&b, "%s<<: &b0 {listen: \"127.0.0.1:5000\"}\n%s<<: *b0\n", pad, pad)
			return
		}
		fmt.Fprintf(&b, "%s<<: &b%d\n", pad, i)
		emit(i-1, indent+1)
		for range 3 {
			fmt.Fprintf(&b, "%s<<: *b%d\n", pad, i)
		}
	}
	emit(levels-1, 1)
	return []byte(b.String())
}

// A small file of nested, repeated merge keys must be refused at once, not
// walked path by path (the loader would hang for hours).
func TestParseNestedMergeKeysDoNotExplode(t *testing.T) {
	data := nestedMerges(30)
	done := make(chan error, 1)
	go func() {
		_, err := Parse(data, "merges.yaml")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Fatalf("Parse = %v, want an ErrInvalid error (the duplicate \"<<\" key)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Parse of a 2 KB config with nested merge keys did not return within 30s")
	}
}
