package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opsCheckCommandLine checks that argv, a command line taken from an example
// or the Dockerfile, names a binary this module builds, an existing tollgate
// subcommand, and only flags that subcommand defines (with values it
// accepts). It runs the built binary with argv's arguments and -h appended:
// the flag parser rejects an unknown flag or bad value before it gets to -h.
func opsCheckCommandLine(t *testing.T, argv []string) {
	t.Helper()
	if len(argv) == 0 {
		t.Fatal("empty command line")
	}
	bin := filepath.Base(argv[0])
	switch bin {
	case "docker-credential-tollgate":
		// Docker runs it as `docker-credential-tollgate version` among others.
		r := opsRunCmd(t, 30*time.Second, nil, filepath.Join(opsBinDir(t), bin), "version")
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "tollgate") {
			t.Fatalf("%s version: exit %d\n%s%s", bin, r.code, r.stdout, r.stderr)
		}
		return
	case "tollgate":
	default:
		t.Fatalf("command %q is not a tollgate binary", argv[0])
	}
	if len(argv) < 2 {
		t.Fatalf("%v names no subcommand", argv)
	}
	args := append(append([]string{}, argv[1:]...), "-h")
	r := opsRunCmd(t, 30*time.Second, nil, opsTollgate(t), args...)
	out := r.stdout + r.stderr
	if strings.Contains(out, "unknown command") {
		t.Fatalf("%v: tollgate has no subcommand %q:\n%s", argv, argv[1], out)
	}
	for _, bad := range []string{"flag provided but not defined", "invalid value", "invalid boolean", "bad flag syntax"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%v: %s", argv, out)
		}
	}
	if r.code != 0 {
		t.Fatalf("%v -h: exit %d, want 0:\n%s", argv, r.code, out)
	}
	if !strings.Contains(out, "-") {
		t.Fatalf("%v -h printed no flag list:\n%s", argv, out)
	}
}
