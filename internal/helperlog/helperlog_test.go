package helperlog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStderrDefaultsToWarn(t *testing.T) {
	t.Setenv("TOLLGATE_LOG_FILE", "")
	t.Setenv("TOLLGATE_LOG_LEVEL", "")
	var stderr bytes.Buffer
	log, done := FromEnv("prog", &stderr)
	log.Info("quiet")
	log.Warn("loud")
	done()
	if out := stderr.String(); strings.Contains(out, "quiet") || !strings.Contains(out, "loud") || !strings.Contains(out, "prog=prog") {
		t.Fatalf("stderr log: %q", out)
	}
}

func TestLogFileIsPrivateAndInfoLevel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "helper.log")
	t.Setenv("TOLLGATE_LOG_FILE", p)
	t.Setenv("TOLLGATE_LOG_LEVEL", "")
	var stderr bytes.Buffer
	log, done := FromEnv("prog", &stderr)
	log.Debug("hidden")
	log.Info("kept")
	done()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if out := string(b); !strings.Contains(out, "kept") || strings.Contains(out, "hidden") {
		t.Fatalf("log file: %q", out)
	}
	if stderr.Len() != 0 {
		t.Fatalf("stderr got %q with a log file set", stderr.String())
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLevelFromEnvAndUnwritableFile(t *testing.T) {
	t.Setenv("TOLLGATE_LOG_FILE", filepath.Join(t.TempDir(), "missing-dir", "x.log"))
	t.Setenv("TOLLGATE_LOG_LEVEL", "debug")
	var stderr bytes.Buffer
	log, done := FromEnv("prog", &stderr)
	log.Debug("detail")
	done()
	out := stderr.String()
	if !strings.Contains(out, "cannot open TOLLGATE_LOG_FILE") || !strings.Contains(out, "detail") {
		t.Fatalf("stderr: %q", out)
	}
}

// A level that is not one says so (and which level is used) instead of
// being dropped silently.
func TestUnknownLevelIsReported(t *testing.T) {
	t.Setenv("TOLLGATE_LOG_FILE", "")
	t.Setenv("TOLLGATE_LOG_LEVEL", "verbose")
	var stderr bytes.Buffer
	log, done := FromEnv("prog", &stderr)
	log.Info("quiet")
	done()
	out := stderr.String()
	if !strings.Contains(out, "TOLLGATE_LOG_LEVEL") || !strings.Contains(out, "verbose") || !strings.Contains(out, "debug, info, warn, error") {
		t.Fatalf("stderr %q does not report the unknown level", out)
	}
	if strings.Contains(out, "quiet") {
		t.Fatalf("info logged at the default warn level: %q", out)
	}
}
