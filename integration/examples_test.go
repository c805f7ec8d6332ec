package integration

// needs: systemd (systemd-analyze verifies the units)

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/refresh"
)

func opsExample(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(opsModuleRoot(t), "examples", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opsSplitCommand splits a command line the way systemd and sh do for the
// simple, unquoted-or-double-quoted lines the examples use, stopping at the
// first shell operator.
func opsSplitCommand(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, have = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t'):
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		case !inQuote && strings.ContainsRune("|;&><", r):
			if have {
				words = append(words, cur.String())
			}
			return words
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if inQuote {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}

// opsUnit is a systemd unit file: section -> key -> values (keys repeat).
type opsUnit map[string]map[string][]string

func opsParseUnit(t *testing.T, data []byte) opsUnit {
	t.Helper()
	u := opsUnit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			t.Fatalf("line %d: continuation lines are not used in the examples", n)
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("line %d: bad section header %q", n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Fatalf("line %d: section [%s] repeated", n, section)
			}
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" || strings.TrimSpace(k) == "" {
			t.Fatalf("line %d: want Key=Value inside a section, got %q", n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u
}

func (u opsUnit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: want exactly one value, have %q", section, key, v)
	}
	return v[0]
}

// opsExecStart returns the command line of a service unit's ExecStart,
// without systemd's prefix characters.
func opsExecStart(t *testing.T, u opsUnit) []string {
	t.Helper()
	line := strings.TrimLeft(u.one(t, "Service", "ExecStart"), "-@+!:")
	argv := opsSplitCommand(t, line)
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		t.Fatalf("ExecStart %q: systemd needs an absolute path", line)
	}
	return argv
}

// opsEnvironment returns Environment= assignments of a unit's [Service].
func opsEnvironment(u opsUnit) map[string]string {
	env := map[string]string{}
	for _, e := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			env[k] = v
		}
	}
	return env
}

func opsFlagValue(argv []string, name string) (string, bool) {
	for i, a := range argv {
		if a == "--"+name || a == "-"+name {
			if i+1 < len(argv) {
				return argv[i+1], true
			}
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func opsHasFlag(argv []string, name string) bool {
	return slices.Contains(argv, "--"+name) || slices.Contains(argv, "-"+name)
}

func TestExampleSystemdUnits(t *testing.T) {
	cases := []struct {
		file, sub string
		loop      bool
		kind      string // Type= of the service
	}{
		{"systemd/tollgate-refresh.service", "refresh", false, "oneshot"},
		{"systemd/tollgate-refresh-loop.service", "refresh", true, "simple"},
		{"systemd/tollgate-proxy.service", "proxy", false, "simple"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			u := opsParseUnit(t, opsExample(t, c.file))
			if u.one(t, "Service", "Type") != c.kind {
				t.Errorf("Type=%s, want %s", u.one(t, "Service", "Type"), c.kind)
			}
			if u.one(t, "Service", "User") != "spacelift" {
				t.Errorf("User=%s, want spacelift", u.one(t, "Service", "User"))
			}
			argv := opsExecStart(t, u)
			if argv[0] != "/usr/local/bin/tollgate" || len(argv) < 2 || argv[1] != c.sub {
				t.Fatalf("ExecStart %v, want /usr/local/bin/tollgate %s ...", argv, c.sub)
			}
			if opsHasFlag(argv, "loop") != c.loop {
				t.Errorf("ExecStart %v: --loop present = %v, want %v", argv, !c.loop, c.loop)
			}
			if c.loop || c.kind == "simple" {
				if _, ok := u["Install"]["WantedBy"]; !ok {
					t.Error("long-running service has no [Install] WantedBy")
				}
			}
			env := opsEnvironment(u)
			if env["SPACELIFT_DOCKER_CONFIG_DIR"] == "" {
				t.Error("no Environment=SPACELIFT_DOCKER_CONFIG_DIR")
			}
			// ProtectSystem=strict makes / read-only: the config dir (which
			// refresh writes) and the cache dir must be listed writable.
			if rw := strings.Join(u["Service"]["ReadWritePaths"], " "); u["Service"]["ProtectSystem"] != nil {
				dirs := []string{env["TOLLGATE_CACHE_DIR"]}
				if c.sub == "refresh" {
					dirs = append(dirs, env["SPACELIFT_DOCKER_CONFIG_DIR"])
				}
				for _, d := range dirs {
					if d == "" || !slices.Contains(strings.Fields(rw), d) {
						t.Errorf("ProtectSystem is set but %q is not in ReadWritePaths=%s", d, rw)
					}
				}
			}
			if cfg, ok := opsFlagValue(argv, "config"); ok && cfg != "/etc/tollgate/config.yaml" {
				t.Errorf("--config %s, the example config is installed as /etc/tollgate/config.yaml", cfg)
			}
			if u["Service"]["ProtectSystem"] != nil {
				// In a subtest: its environment (HOME) ends with it.
				t.Run("writable dirs", func(t *testing.T) { opsCheckUnitWritesAllowed(t, u, c.sub, env) })
			}
			t.Run("command exists", func(t *testing.T) { opsCheckCommandLine(t, argv[0:]) })
		})
	}
	t.Run("tollgate-refresh.timer", func(t *testing.T) {
		u := opsParseUnit(t, opsExample(t, "systemd/tollgate-refresh.timer"))
		if u["Timer"] == nil {
			t.Fatal("no [Timer] section")
		}
		if u["Timer"]["OnCalendar"] == nil && u["Timer"]["OnUnitActiveSec"] == nil {
			t.Error("timer has neither OnCalendar nor OnUnitActiveSec")
		}
		if u.one(t, "Install", "WantedBy") != "timers.target" {
			t.Error("timer is not WantedBy=timers.target")
		}
		// It starts the unit of the same name unless Unit= says otherwise.
		if unit := u["Timer"]["Unit"]; unit != nil && unit[0] != "tollgate-refresh.service" {
			t.Errorf("timer starts %s", unit[0])
		}
		if _, err := os.Stat(filepath.Join(opsModuleRoot(t), "examples/systemd/tollgate-refresh.service")); err != nil {
			t.Error(err)
		}
	})
}

// opsCheckUnitWritesAllowed checks, for a unit with ProtectSystem= (which
// makes everything outside ReadWritePaths read-only, /home included), that
// every directory the command writes with the example config is writable:
// the token cache, and the proxy's content cache. The unit runs with
// systemd's environment for User=: HOME is the user's home, no
// XDG_CACHE_HOME.
func opsCheckUnitWritesAllowed(t *testing.T, u opsUnit, sub string, env map[string]string) {
	t.Helper()
	t.Setenv("HOME", "/home/"+u.one(t, "Service", "User"))
	t.Setenv("XDG_CACHE_HOME", "")
	cfg, err := config.Parse(opsExample(t, "tollgate/config.yaml"), "examples/tollgate/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rw := strings.Fields(strings.Join(u["Service"]["ReadWritePaths"], " "))
	writable := func(dir string) bool {
		for _, p := range rw {
			if dir == p || strings.HasPrefix(dir, strings.TrimSuffix(p, "/")+"/") {
				return true
			}
		}
		return false
	}
	tokenCache := cfg.ECR.CacheDir
	if tokenCache == "" {
		tokenCache = env["TOLLGATE_CACHE_DIR"]
	}
	dirs := map[string]string{"token cache (ecr.cache_dir, TOLLGATE_CACHE_DIR)": tokenCache}
	if sub == "proxy" {
		dirs["proxy cache (proxy.cache.dir)"] = cfg.Proxy.Cache.Dir
	}
	for what, d := range dirs {
		if d == "" || !writable(d) {
			t.Errorf("%s is %q, which ProtectSystem leaves read-only: not under ReadWritePaths=%s", what, d, strings.Join(rw, " "))
		}
	}
}

// TestExampleSystemdVerify has systemd itself check the units, with the
// binary path pointed at the built tollgate: unknown keys, bad values and
// commands that are not executable are reported.
func TestExampleSystemdVerify(t *testing.T) {
	// Installed by scripts/install-test-deps.sh: as root a missing
	// systemd-analyze fails the test instead of skipping it.
	harness.RequireCommands(t, "systemd-analyze")
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(opsModuleRoot(t), "examples", "systemd")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/tollgate"), []byte(opsTollgate(t)))
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, "./"+e.Name())
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestExampleCron(t *testing.T) {
	data := opsExample(t, "cron/tollgate-refresh")
	env := map[string]string{}
	var jobs [][]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			env[k] = v
			continue
		}
		// /etc/cron.d format: five time fields, the user, the command.
		f := strings.Fields(line)
		if len(f) < 7 {
			t.Fatalf("cron line %q: want 5 time fields, a user and a command", line)
		}
		field := regexp.MustCompile(`^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$`)
		for i := 0; i < 5; i++ {
			if !field.MatchString(f[i]) {
				t.Errorf("cron line %q: time field %d %q is not valid", line, i+1, f[i])
			}
		}
		if f[5] != "spacelift" {
			t.Errorf("cron job runs as %q, want spacelift", f[5])
		}
		cmd := line
		for i := 0; i < 6; i++ {
			cmd = strings.TrimSpace(cmd[len(strings.Fields(cmd)[0]):])
		}
		jobs = append(jobs, opsSplitCommand(t, cmd))
	}
	if env["SPACELIFT_DOCKER_CONFIG_DIR"] == "" {
		t.Error("cron file does not set SPACELIFT_DOCKER_CONFIG_DIR (cron's environment is nearly empty)")
	}
	if len(jobs) != 1 {
		t.Fatalf("want one job, got %d", len(jobs))
	}
	if jobs[0][0] != "/usr/local/bin/tollgate" || jobs[0][1] != "refresh" {
		t.Fatalf("cron job runs %v", jobs[0])
	}
	opsCheckCommandLine(t, jobs[0])
}

type opsK8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Rules []struct {
		APIGroups     []string `yaml:"apiGroups"`
		Resources     []string `yaml:"resources"`
		ResourceNames []string `yaml:"resourceNames"`
		Verbs         []string `yaml:"verbs"`
	} `yaml:"rules"`
	RoleRef struct {
		Kind, Name string
	} `yaml:"roleRef"`
	Subjects []struct {
		Kind, Name, Namespace string
	} `yaml:"subjects"`
	Spec struct {
		Schedule    string `yaml:"schedule"`
		JobTemplate struct {
			Spec struct {
				Template struct {
					Spec opsPodSpec `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
	} `yaml:"spec"`
}

type opsContainer struct {
	Name         string   `yaml:"name"`
	Image        string   `yaml:"image"`
	Command      []string `yaml:"command"`
	Args         []string `yaml:"args"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	Env []struct{ Name, Value string } `yaml:"env"`
}

type opsPodSpec struct {
	ServiceAccountName string `yaml:"serviceAccountName"`
	RestartPolicy      string `yaml:"restartPolicy"`
	SecurityContext    struct {
		RunAsUser int `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	InitContainers []opsContainer `yaml:"initContainers"`
	Containers     []opsContainer `yaml:"containers"`
	Volumes        []struct {
		Name     string         `yaml:"name"`
		EmptyDir map[string]any `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

func TestExampleKubernetesCronJob(t *testing.T) {
	dec := yaml.NewDecoder(bytes.NewReader(opsExample(t, "kubernetes/refresh-cronjob.yaml")))
	objs := map[string]opsK8sObject{}
	for {
		var o opsK8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" || o.Metadata.Namespace == "" {
			t.Fatalf("object without apiVersion, kind, name or namespace: %+v", o)
		}
		objs[o.Kind] = o
	}
	sa, role, rb, cj := objs["ServiceAccount"], objs["Role"], objs["RoleBinding"], objs["CronJob"]
	for k, o := range map[string]opsK8sObject{"ServiceAccount": sa, "Role": role, "RoleBinding": rb, "CronJob": cj} {
		if o.Kind == "" {
			t.Fatalf("no %s in the manifest", k)
		}
	}
	if cj.APIVersion != "batch/v1" {
		t.Errorf("CronJob apiVersion %s, want batch/v1", cj.APIVersion)
	}
	if !regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/.+$`).MatchString(sa.Metadata.Annotations["eks.amazonaws.com/role-arn"]) {
		t.Errorf("ServiceAccount has no IRSA annotation eks.amazonaws.com/role-arn with a role ARN: %v", sa.Metadata.Annotations)
	}
	if len(strings.Fields(cj.Spec.Schedule)) != 5 {
		t.Errorf("schedule %q is not a five-field cron expression", cj.Spec.Schedule)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("pod runs as ServiceAccount %q, the manifest defines %q", pod.ServiceAccountName, sa.Metadata.Name)
	}
	if pod.SecurityContext.RunAsUser != 1983 {
		t.Errorf("pod runAsUser %d, want 1983", pod.SecurityContext.RunAsUser)
	}
	if rb.RoleRef.Name != role.Metadata.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != sa.Metadata.Name {
		t.Errorf("RoleBinding does not bind Role %s to ServiceAccount %s", role.Metadata.Name, sa.Metadata.Name)
	}

	if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
		t.Fatalf("want one init container (refresh) and one container (apply)")
	}
	refresh, apply := pod.InitContainers[0], pod.Containers[0]
	argv := append(append([]string{}, refresh.Command...), refresh.Args...)
	if len(argv) < 2 || argv[0] != "tollgate" || argv[1] != "refresh" {
		t.Fatalf("init container runs %v, want tollgate refresh", argv)
	}
	if f, _ := opsFlagValue(argv, "format"); f != "kubernetes-secret" {
		t.Errorf("refresh --format %q, want kubernetes-secret", f)
	}
	name, _ := opsFlagValue(argv, "name")
	ns, _ := opsFlagValue(argv, "namespace")
	out, _ := opsFlagValue(argv, "output")
	if ns != cj.Metadata.Namespace {
		t.Errorf("--namespace %q, the CronJob is in %q", ns, cj.Metadata.Namespace)
	}
	// The Role lets the job get and patch that Secret, and create it.
	var canPatch, canCreate bool
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "secrets") {
			continue
		}
		if slices.Contains(r.ResourceNames, name) && slices.Contains(r.Verbs, "get") && slices.Contains(r.Verbs, "patch") {
			canPatch = true
		}
		if len(r.ResourceNames) == 0 && slices.Contains(r.Verbs, "create") {
			canCreate = true
		}
	}
	if !canPatch || !canCreate {
		t.Errorf("Role does not allow get+patch on secret %q and create (patch %v, create %v)", name, canPatch, canCreate)
	}
	// The apply container applies the very file refresh writes, from a
	// volume both mount at the same place.
	applyArgv := append(append([]string{}, apply.Command...), apply.Args...)
	if len(applyArgv) < 2 || applyArgv[0] != "kubectl" || applyArgv[1] != "apply" {
		t.Fatalf("apply container runs %v, want kubectl apply", applyArgv)
	}
	if f, _ := opsFlagValue(applyArgv, "f"); f != out || out == "" {
		t.Errorf("kubectl apply -f %q, refresh --output %q", f, out)
	}
	mount := func(c opsContainer) string {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(out, m.MountPath+"/") {
				return m.Name
			}
		}
		return ""
	}
	if v := mount(refresh); v == "" || v != mount(apply) {
		t.Errorf("refresh and apply do not share the volume holding %s", out)
	}
	for _, e := range refresh.Env {
		if e.Name == "TOLLGATE_CACHE_DIR" && !strings.HasPrefix(e.Value, "/work/") {
			t.Errorf("TOLLGATE_CACHE_DIR %s is not on the writable volume", e.Value)
		}
	}
	opsCheckCommandLine(t, argv)
}

// opsCheckProxyURL checks that a mirror URL points at the proxy on a
// loopback address over plain http and says which port.
func opsCheckProxyHostPort(t *testing.T, hostport string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		t.Errorf("%q is not a loopback address: the proxy listens on 127.0.0.1", hostport)
	}
	if port != "5000" {
		t.Errorf("%q: the proxy in examples/systemd listens on port 5000", hostport)
	}
}

func TestExampleContainerdHosts(t *testing.T) {
	for _, dir := range []string{"_default", "docker.io"} {
		t.Run(dir, func(t *testing.T) {
			var h struct {
				Server string `toml:"server"`
				Host   map[string]struct {
					Capabilities []string `toml:"capabilities"`
					SkipVerify   bool     `toml:"skip_verify"`
					OverridePath bool     `toml:"override_path"`
				} `toml:"host"`
			}
			md, err := toml.Decode(string(opsExample(t, "containerd/certs.d/"+dir+"/hosts.toml")), &h)
			if err != nil {
				t.Fatalf("TOML: %v", err)
			}
			if u := md.Undecoded(); len(u) > 0 {
				t.Fatalf("keys containerd does not know: %v", u)
			}
			if dir == "docker.io" && h.Server != "https://registry-1.docker.io" {
				t.Errorf("server = %q, want https://registry-1.docker.io", h.Server)
			}
			if dir == "_default" && h.Server != "" {
				t.Errorf("_default names a server (%q): it would send every registry there", h.Server)
			}
			if len(h.Host) != 1 {
				t.Fatalf("want one mirror host, got %d", len(h.Host))
			}
			for raw, m := range h.Host {
				u, err := url.Parse(raw)
				if err != nil || u.Scheme != "http" || u.Path != "" {
					t.Fatalf("host %q: want http://HOST:PORT (the proxy serves plain http on loopback)", raw)
				}
				opsCheckProxyHostPort(t, u.Host)
				if !slices.Contains(m.Capabilities, "pull") || !slices.Contains(m.Capabilities, "resolve") || slices.Contains(m.Capabilities, "push") {
					t.Errorf("capabilities %v, want pull and resolve, not push", m.Capabilities)
				}
				if m.OverridePath {
					t.Error("override_path would drop the /v2 prefix the proxy serves")
				}
			}
		})
	}
}

func TestExamplePodmanRegistries(t *testing.T) {
	var conf struct {
		UnqualifiedSearchRegistries []string `toml:"unqualified-search-registries"`
		ShortNameMode               string   `toml:"short-name-mode"`
		Registry                    []struct {
			Prefix   string `toml:"prefix"`
			Location string `toml:"location"`
			Mirror   []struct {
				Location string `toml:"location"`
				Insecure bool   `toml:"insecure"`
			} `toml:"mirror"`
		} `toml:"registry"`
	}
	md, err := toml.Decode(string(opsExample(t, "podman/registries.conf")), &conf)
	if err != nil {
		t.Fatalf("TOML: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("keys containers-registries.conf(5) does not know: %v", u)
	}
	if len(conf.Registry) == 0 {
		t.Fatal("no [[registry]] entries")
	}
	for _, r := range conf.Registry {
		if len(r.Mirror) != 1 {
			t.Errorf("registry %s: want one mirror, got %d", r.Prefix, len(r.Mirror))
			continue
		}
		m := r.Mirror[0]
		hostport, path, _ := strings.Cut(m.Location, "/")
		opsCheckProxyHostPort(t, hostport)
		// The proxy routes on the first path component: the upstream host.
		if path != r.Location {
			t.Errorf("registry %s: mirror path %q, want the upstream host %q", r.Prefix, path, r.Location)
		}
		if !m.Insecure {
			t.Errorf("registry %s: the proxy serves plain http, the mirror needs insecure = true", r.Prefix)
		}
	}
}

func TestExampleDockerDaemonJSON(t *testing.T) {
	var d struct {
		RegistryMirrors []string `json:"registry-mirrors"`
	}
	dec := json.NewDecoder(bytes.NewReader(opsExample(t, "docker/daemon.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	if len(d.RegistryMirrors) != 1 {
		t.Fatalf("registry-mirrors %v, want one", d.RegistryMirrors)
	}
	u, err := url.Parse(d.RegistryMirrors[0])
	if err != nil || u.Scheme != "http" || (u.Path != "" && u.Path != "/") {
		t.Fatalf("mirror %q: want http://HOST:PORT", d.RegistryMirrors[0])
	}
	opsCheckProxyHostPort(t, u.Host)
}

func TestExampleDockerConfigs(t *testing.T) {
	type dockerConfig struct {
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	helpers := map[string]int{}
	for _, f := range []string{"docker/config.json", "docker/config-credhelpers.json"} {
		var c dockerConfig
		dec := json.NewDecoder(bytes.NewReader(opsExample(t, f)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.CredsStore != "" {
			helpers[c.CredsStore]++
		}
		for host, h := range c.CredHelpers {
			if strings.ContainsAny(host, "/:") {
				t.Errorf("%s: credHelpers key %q: docker matches bare hosts", f, host)
			}
			helpers[h]++
		}
	}
	if len(helpers) != 1 || helpers["tollgate"] == 0 {
		t.Fatalf("helpers named: %v, want only tollgate", helpers)
	}
	// Docker runs docker-credential-<name>.
	opsCheckCommandLine(t, []string{"docker-credential-tollgate"})
}

func TestExampleTollgateConfig(t *testing.T) {
	c, err := config.Parse(opsExample(t, "tollgate/config.yaml"), "examples/tollgate/config.yaml")
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if _, err := refresh.CanonicalHosts(c.Refresh.Registries); err != nil {
		t.Errorf("refresh.registries: %v", err)
	}
	if len(c.Refresh.Registries) == 0 {
		t.Error("example config lists no refresh.registries")
	}
	if c.ECR.RefreshMargin <= 0 {
		t.Error("example config has no ecr.refresh_margin")
	}
}

// TestExampleAuthz checks the authorization plugin's unit and daemon.json:
// the unit starts `tollgate authz` before docker.service with the example
// config, its socket is the one daemon.json names, and the directory it
// creates the socket in is writable under ProtectSystem=strict.
func TestExampleAuthz(t *testing.T) {
	u := opsParseUnit(t, opsExample(t, "systemd/tollgate-authz.service"))
	if !slices.Contains(strings.Fields(u.one(t, "Unit", "Before")), "docker.service") {
		t.Error("the unit is not ordered Before=docker.service: dockerd would start without its plugin and refuse every request until it is up")
	}
	if !slices.Contains(strings.Fields(u.one(t, "Install", "WantedBy")), "docker.service") {
		t.Error("the unit is not WantedBy=docker.service: starting docker would not start it")
	}
	if u.one(t, "Service", "Restart") != "always" {
		t.Error("Restart is not always: while the plugin is down the daemon refuses every request")
	}
	argv := opsExecStart(t, u)
	if argv[0] != "/usr/local/bin/tollgate" || len(argv) < 2 || argv[1] != "authz" {
		t.Fatalf("ExecStart %v, want /usr/local/bin/tollgate authz ...", argv)
	}
	cfgPath, ok := opsFlagValue(argv, "config")
	if !ok || cfgPath != "/etc/tollgate/config.yaml" {
		t.Errorf("--config %q, the example config is installed as /etc/tollgate/config.yaml", cfgPath)
	}
	cfg, err := config.Parse(opsExample(t, "tollgate/config.yaml"), "examples/tollgate/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sock := cfg.Authz.Socket
	if s, ok := opsFlagValue(argv, "socket"); ok {
		sock = s
	}
	if filepath.Dir(sock) != "/run/docker/plugins" || !strings.HasSuffix(sock, ".sock") {
		t.Fatalf("socket %s is not /run/docker/plugins/NAME.sock, where dockerd looks", sock)
	}
	if u.one(t, "Service", "RuntimeDirectory") != "docker/plugins" || u.one(t, "Service", "RuntimeDirectoryPreserve") != "yes" {
		t.Error("RuntimeDirectory=docker/plugins with RuntimeDirectoryPreserve=yes is what makes the socket directory exist and writable under ProtectSystem=strict, and keeps other plugins' sockets on stop")
	}
	var d struct {
		AuthorizationPlugins []string `json:"authorization-plugins"`
		RegistryMirrors      []string `json:"registry-mirrors"`
	}
	dec := json.NewDecoder(bytes.NewReader(opsExample(t, "docker/daemon-authz.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("daemon-authz.json: %v", err)
	}
	name := strings.TrimSuffix(filepath.Base(sock), ".sock")
	if !slices.Equal(d.AuthorizationPlugins, []string{name}) {
		t.Errorf("daemon-authz.json names plugins %v; the unit serves %q", d.AuthorizationPlugins, name)
	}
	for _, m := range d.RegistryMirrors {
		u, err := url.Parse(m)
		if err != nil {
			t.Fatal(err)
		}
		opsCheckProxyHostPort(t, u.Host)
	}
	for _, g := range []config.Gate{cfg.Authz.Build, cfg.Authz.Load, cfg.Authz.Import, cfg.Authz.LocalImages} {
		if g != config.GateDeny {
			t.Errorf("the example config opens an authz gate (%q): the example should show the safe setting", g)
		}
	}
	t.Run("command exists", func(t *testing.T) { opsCheckCommandLine(t, argv) })
}
