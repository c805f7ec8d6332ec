package main

import (
	"strings"
	"testing"
)

// version prints the version and exits 0; -h prints its usage, not the
// version; a stray argument or flag is a usage error (2), as for every other
// subcommand.
func TestVersionArguments(t *testing.T) {
	code, stdout, stderr := runTollgate(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "tollgate ") || stderr != "" {
		t.Fatalf("version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runTollgate(t, "version", "-h")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "usage: tollgate version") {
		t.Errorf("version -h: exit %d, stdout %q, stderr %q; want its usage on stderr", code, stdout, stderr)
	}
	for _, args := range [][]string{{"version", "--bogus"}, {"version", "extra"}} {
		code, stdout, stderr = runTollgate(t, args...)
		if code != 2 || stdout != "" || stderr == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and a message", args, code, stdout, stderr)
		}
	}
}
