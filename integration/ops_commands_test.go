package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opsForeignCommands are tollgate subcommands built on other branches. Until
// those are merged, an example naming one is skipped (with the reason), not
// failed; once merged, it is checked like every other.
var opsForeignCommands = map[string]string{
	"proxy": "proxyhttp",
	"check": "allowlist",
}

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
		p := filepath.Join(opsBinDir(t), bin)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not built on this branch yet (branch ecr): %v", bin, err)
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
		if branch, ok := opsForeignCommands[argv[1]]; ok {
			t.Skipf("subcommand %q is built on branch %s, not merged here yet", argv[1], branch)
		}
		t.Fatalf("%v: tollgate has no subcommand %q:\n%s", argv, argv[1], out)
	}
	for _, bad := range []string{"flag provided but not defined", "invalid value", "invalid boolean", "bad flag syntax"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%v: %s", argv, out)
		}
	}
	if _, foreign := opsForeignCommands[argv[1]]; !foreign && r.code != 0 {
		t.Fatalf("%v -h: exit %d, want 0:\n%s", argv, r.code, out)
	}
	if !strings.Contains(out, "-") {
		t.Fatalf("%v -h printed no flag list:\n%s", argv, out)
	}
}
