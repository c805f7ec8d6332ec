package main

import (
	"strings"
	"testing"
)

// Every entry of the command table is listed by `tollgate help` with its
// summary and answers -h with its own usage, exit 0: the table is wired to
// real commands.
func TestCommandTable(t *testing.T) {
	_, _, help := runTollgate(t, "help")
	for name, c := range commands {
		if c.run == nil || c.summary == "" || !strings.Contains(help, name+" ") || !strings.Contains(help, c.summary) {
			t.Errorf("%s: entry %+v, help %q", name, c.summary, help)
			continue
		}
		code, _, stderr := runTollgate(t, name, "-h")
		if code != 0 || !strings.Contains(stderr, "tollgate "+name) {
			t.Errorf("%s -h: exit %d, stderr %q", name, code, stderr)
		}
	}
}
