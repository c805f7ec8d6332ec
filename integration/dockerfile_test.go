package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// opsParseDockerfile parses the repository's Dockerfile with BuildKit's own
// parser into stages.
func opsParseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(opsModuleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile does not parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile parser warning: %s", w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, got %d stage(s)", len(stages))
	}
	return stages
}

type opsEnv map[string]string

func (e opsEnv) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }
func (e opsEnv) Keys() []string {
	var ks []string
	for k := range e {
		ks = append(ks, k)
	}
	return ks
}

// opsShellCommands splits a RUN line into its simple commands (at && ; ||)
// and each into words, with the shell's quoting rules.
func opsShellCommands(t *testing.T, line string) [][]string {
	t.Helper()
	lex := shell.NewLex('\\')
	var cmds [][]string
	for _, part := range regexp.MustCompile(`&&|\|\||;`).Split(line, -1) {
		words, err := lex.ProcessWords(part, opsEnv{})
		if err != nil {
			t.Fatalf("split %q: %v", part, err)
		}
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
	}
	return cmds
}

func TestDockerfileBaseImagesPinned(t *testing.T) {
	stages := opsParseDockerfile(t)
	// An exact version: a full Go release with its Debian suite, a Debian
	// point release or dated snapshot; or any tag with a digest.
	exact := regexp.MustCompile(`^(golang:\d+\.\d+\.\d+-bookworm|debian:(12\.\d+|bookworm-\d{8})-slim)$`)
	digest := regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	for _, s := range stages {
		if !exact.MatchString(s.BaseName) && !digest.MatchString(s.BaseName) {
			t.Errorf("FROM %s: not pinned to an exact version (want e.g. golang:1.26.8-bookworm, debian:12.12-slim, or @sha256:...)", s.BaseName)
		}
	}
	if !strings.HasPrefix(stages[0].BaseName, "golang:") {
		t.Errorf("build stage FROM %s, want golang", stages[0].BaseName)
	}
	if last := stages[len(stages)-1]; !strings.HasPrefix(last.BaseName, "debian:") || !strings.Contains(last.BaseName, "slim") {
		t.Errorf("runtime stage FROM %s, want debian bookworm slim", last.BaseName)
	}
	// Digest pinning is documented beside the FROM lines.
	b, _ := os.ReadFile(filepath.Join(opsModuleRoot(t), "Dockerfile"))
	if !strings.Contains(string(b), "@sha256:") {
		t.Error("Dockerfile does not document how to pin the base images by digest")
	}
}

func TestDockerfileBuildStageBuildsTheCommands(t *testing.T) {
	stages := opsParseDockerfile(t)
	build := stages[0]
	var goBuild []string
	var env []string
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env = append(env, kv.Key+"="+kv.Value)
			}
		case *instructions.RunCommand:
			for _, words := range opsShellCommands(t, strings.Join(c.CmdLine, " ")) {
				i := slices.Index(words, "go")
				if i >= 0 && i+1 < len(words) && words[i+1] == "build" {
					if goBuild != nil {
						t.Fatalf("more than one go build in the build stage: %v and %v", goBuild, words)
					}
					goBuild = words
				}
			}
		}
	}
	if goBuild == nil {
		t.Fatal("build stage has no go build")
	}
	if !slices.Contains(goBuild, "CGO_ENABLED=0") && !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("go build is not run with CGO_ENABLED=0: %v", goBuild)
	}
	if !slices.Contains(goBuild, "-trimpath") {
		t.Errorf("go build lacks -trimpath: %v", goBuild)
	}
	i := slices.Index(goBuild, "-ldflags")
	if i < 0 || i+1 >= len(goBuild) || !strings.Contains(goBuild[i+1], "-X github.com/spacelift-io/tollgate/internal/buildinfo.Version=") {
		t.Errorf("go build does not stamp internal/buildinfo.Version with -ldflags -X: %v", goBuild)
	}
	// The packages: the same pattern the tests build (harness.BuildBinaries), which must
	// cover every main package of the module.
	pkgs := goBuild[len(goBuild)-1]
	if pkgs != "./cmd/..." {
		t.Fatalf("go build builds %q, the tests build ./cmd/...", pkgs)
	}
	out, err := exec.Command("go", "list", "-f", "{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}", "github.com/spacelift-io/tollgate/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// Benchmark drivers under bench/ are not shipped; any other main
	// package outside ./cmd/ would be missing from the image.
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/spacelift-io/tollgate/cmd/") && !strings.HasPrefix(p, "github.com/spacelift-io/tollgate/bench/") {
			t.Errorf("main package %s is outside ./cmd/, so the image would not carry it", p)
		}
	}
	for _, want := range []string{"cmd/tollgate", "cmd/docker-credential-tollgate"} {
		if !slices.Contains(strings.Fields(string(out)), "github.com/spacelift-io/tollgate/"+want) {
			t.Errorf("go list found no %s: %q", want, out)
		}
	}
	// The binaries land on PATH in the runtime stage.
	var copied bool
	for _, c := range stages[len(stages)-1].Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == build.Name && cp.DestPath == "/usr/local/bin/" {
			copied = true
		}
	}
	if !copied {
		t.Errorf("runtime stage does not COPY --from=%s the binaries into /usr/local/bin/", build.Name)
	}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	stages := opsParseDockerfile(t)
	final := stages[len(stages)-1]
	var user string
	var installed []string
	var runs []string
	var entry, cmd []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			runs = append(runs, line)
			for _, words := range opsShellCommands(t, line) {
				if len(words) > 1 && (words[0] == "apt-get" || words[0] == "apt") && slices.Contains(words, "install") {
					installed = append(installed, words...)
				}
			}
		case *instructions.EntrypointCommand:
			entry = c.CmdLine
		case *instructions.CmdCommand:
			cmd = c.CmdLine
		}
	}
	if user != "1983" && user != "spacelift" && user != "1983:1983" && user != "spacelift:spacelift" {
		t.Errorf("final USER is %q, want 1983 or spacelift", user)
	}
	for _, p := range []string{"procps", "ca-certificates"} {
		if !slices.Contains(installed, p) {
			t.Errorf("runtime stage does not install %s (installs %v)", p, installed)
		}
	}
	all := strings.Join(runs, "\n")
	if !regexp.MustCompile(`useradd[^\n]*--uid 1983[^\n]*spacelift`).MatchString(all) {
		t.Error("runtime stage does not create user spacelift with UID 1983")
	}
	if !strings.Contains(all, `{"credsStore":"tollgate"}`) || !strings.Contains(all, "/home/spacelift/.docker/config.json") {
		t.Error(`runtime stage does not write /home/spacelift/.docker/config.json with {"credsStore":"tollgate"}`)
	}
	// The entrypoint runs the proxy, and the command line it runs exists.
	argv := append(append([]string{}, entry...), cmd...)
	if len(argv) < 2 || argv[0] != "tollgate" || argv[1] != "proxy" {
		t.Fatalf("ENTRYPOINT+CMD = %v, want tollgate proxy ...", argv)
	}
	t.Run("entrypoint command exists", func(t *testing.T) { opsCheckCommandLine(t, argv) })
}

// TestDockerRunPublishesOnLoopback checks the documented `docker run`
// lines of the runner image: the proxy authenticates no client and, in
// private mode, sends the host's credentials upstream, so publishing its
// port must bind the host's loopback address (-p 127.0.0.1:5000:5000), never
// every interface (-p 5000:5000).
func TestDockerRunPublishesOnLoopback(t *testing.T) {
	publish := regexp.MustCompile(`(?:^|\s)(?:-p|--publish)(?:\s+|=)(\S+)`)
	seen := 0
	for _, f := range []string{"Dockerfile", "docs/runner-image.md", "README.md", "docs/proxy.md"} {
		b, err := os.ReadFile(filepath.Join(opsModuleRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, "docker run") {
				continue
			}
			for _, m := range publish.FindAllStringSubmatch(line, -1) {
				seen++
				// ip:hostPort:containerPort; [::1]:hostPort:containerPort.
				spec := m[1]
				ip := ""
				if i := strings.LastIndex(spec, ":"); i >= 0 {
					if j := strings.LastIndex(spec[:i], ":"); j >= 0 {
						ip = strings.Trim(spec[:j], "[]")
					}
				}
				if a := net.ParseIP(ip); a == nil || !a.IsLoopback() {
					t.Errorf("%s:%d: docker run %s publishes the proxy on every interface of the host; bind loopback (-p 127.0.0.1:5000:5000)", f, n+1, strings.TrimSpace(m[0]))
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no docker run -p line found in the runner image docs; the test looks in the wrong place")
	}
}
