package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runTollgate(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckAllAllowed(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	code, out, errOut := runTollgate(t, "check", "alpine", "ghcr.io/org/app:1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app")
	if code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	want := "allow docker.io/library/alpine:latest  allowed by allowlist pattern \"docker.io\"\n" +
		"allow ghcr.io/org/app:1  allowed by allowlist pattern \"ghcr.io\"\n" +
		"allow 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest  allowed by allowlist pattern \"<account>.dkr.ecr.<region>.amazonaws.com\"\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
}

func TestCheckDenied(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	code, out, _ := runTollgate(t, "check", "alpine", "ghcr.io.evil.com/org/app", "Not A Ref")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", out)
	}
	if !strings.HasPrefix(lines[0], "allow docker.io/library/alpine:latest ") {
		t.Errorf("line 1 = %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "deny  ghcr.io.evil.com/org/app:latest  registry host ghcr.io.evil.com is not in the allowlist") {
		t.Errorf("line 2 = %q", lines[1])
	}
	if !strings.HasPrefix(lines[2], `deny  "Not A Ref"  invalid image reference "Not A Ref": `) {
		t.Errorf("line 3 = %q", lines[2])
	}
}

func TestCheckHostileReferenceStaysOnItsLine(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	code, out, _ := runTollgate(t, "check", "evil\nallow docker.io/library/alpine:latest  allowed", "x\x1b[2J")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "deny ") || !strings.HasPrefix(lines[1], "deny ") || strings.ContainsRune(out, 0x1b) {
		t.Errorf("hostile references forged output: %q", out)
	}
}

func TestCheckJSON(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	// Flags may follow the references.
	code, out, errOut := runTollgate(t, "check", "alpine", "evil.example/x", "--json")
	if code != 1 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var vs []struct {
		Allowed    bool   `json:"allowed"`
		Reference  string `json:"reference"`
		Host       string `json:"host"`
		Repository string `json:"repository"`
		Pattern    string `json:"pattern"`
		Reason     string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(vs) != 2 {
		t.Fatalf("want 2 verdicts, got %d", len(vs))
	}
	if !vs[0].Allowed || vs[0].Reference != "docker.io/library/alpine:latest" || vs[0].Host != "docker.io" ||
		vs[0].Repository != "library/alpine" || vs[0].Pattern != "docker.io" || vs[0].Reason == "" {
		t.Errorf("verdict 0 = %+v", vs[0])
	}
	if vs[1].Allowed || vs[1].Host != "evil.example" || vs[1].Pattern != "" || !strings.Contains(vs[1].Reason, "not in the allowlist") {
		t.Errorf("verdict 1 = %+v", vs[1])
	}
}

func TestCheckConfig(t *testing.T) {
	custom := writeConfig(t, "allowlist:\n  - ghcr.io/myorg/*\n")
	other := writeConfig(t, "allowlist:\n  - quay.io\n")

	t.Setenv("TOLLGATE_CONFIG", custom)
	if code, out, _ := runTollgate(t, "check", "ghcr.io/myorg/app"); code != 0 {
		t.Errorf("TOLLGATE_CONFIG not used: exit %d %q", code, out)
	}
	if code, out, _ := runTollgate(t, "check", "alpine"); code != 1 || !strings.Contains(out, "registry host docker.io is not in the allowlist") {
		t.Errorf("custom config still allows Docker Hub: exit %d %q", code, out)
	}
	// --config wins over the environment, in both spellings.
	if code, out, _ := runTollgate(t, "check", "--config", other, "quay.io/a/b"); code != 0 {
		t.Errorf("--config not used: exit %d %q", code, out)
	}
	if code, out, _ := runTollgate(t, "check", "-config="+other, "ghcr.io/myorg/app"); code != 1 {
		t.Errorf("-config= not used: exit %d %q", code, out)
	}
}

func TestCheckUsageAndConfigErrors(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	bad := writeConfig(t, "mode: private\nallowlist:\n  - docker.io\n  - \"*.*\"\n")
	unknown := writeConfig(t, "alowlist: [docker.io]\n")
	cases := []struct {
		name       string
		args       []string
		code       int
		stderrWant string
	}{
		{"no reference", []string{"check"}, 2, "no image reference given"},
		{"unknown flag", []string{"check", "--jsn", "alpine"}, 2, "flag provided but not defined: -jsn"},
		{"missing config", []string{"check", "--config", "/nonexistent/tollgate.yaml", "alpine"}, 2, "/nonexistent/tollgate.yaml"},
		{"invalid pattern", []string{"check", "--config", bad, "alpine"}, 2, bad + `:4: invalid allowlist pattern "*.*"`},
		{"unknown key", []string{"check", "--config", unknown, "alpine"}, 2, unknown + `:1: unknown key "alowlist" (did you mean "allowlist"?)`},
		{"help", []string{"check", "-h"}, 0, "usage: tollgate check"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runTollgate(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errOut)
			}
			if !strings.Contains(errOut, c.stderrWant) {
				t.Errorf("stderr %q does not contain %q", errOut, c.stderrWant)
			}
			if c.code == 2 && out != "" {
				t.Errorf("a usage or config error printed verdicts: %q", out)
			}
		})
	}
	// Everything after "--" is a reference, even if it looks like a flag.
	if code, out, _ := runTollgate(t, "check", "--", "--json"); code != 1 || !strings.HasPrefix(out, "deny  --json  invalid image reference") {
		t.Errorf(`check -- --json: exit %d, %q`, code, out)
	}
}
