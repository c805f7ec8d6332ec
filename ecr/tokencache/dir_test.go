package tokencache

import (
	"path/filepath"
	"strings"
	"testing"
)

// A relative cache directory would put tokens wherever the process happens
// to run (docker's working directory, a build context that is then copied
// into an image): it is refused with the setting to fix. A relative
// XDG_CACHE_HOME is ignored, as the XDG spec says (and as the proxy's
// config does), not an error.
func TestDirRefusesRelativePaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("TOLLGATE_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "relative/cache")
	got, err := Dir("")
	if err != nil || got != filepath.Join(home, ".cache", "tollgate") {
		t.Fatalf("relative XDG_CACHE_HOME: Dir = %q, %v; want ~/.cache/tollgate", got, err)
	}
	t.Setenv("TOLLGATE_CACHE_DIR", "tollgate-cache")
	if got, err := Dir(""); err == nil || !strings.Contains(err.Error(), "TOLLGATE_CACHE_DIR") || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative TOLLGATE_CACHE_DIR: Dir = %q, %v; want an error naming it", got, err)
	}
	if got, err := Dir("cache"); err == nil || !strings.Contains(err.Error(), "cache_dir") || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative cache_dir: Dir = %q, %v; want an error naming it", got, err)
	}
	abs := filepath.Join(home, "c")
	t.Setenv("TOLLGATE_CACHE_DIR", abs)
	if got, err := Dir(""); err != nil || got != abs {
		t.Fatalf("absolute TOLLGATE_CACHE_DIR: %q %v", got, err)
	}
}
