package integration

// needs: docker-registry skopeo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned
// as a tool dependency in go.mod.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance"

// buildConformance builds the conformance runner (quick after the first
// time: go's build cache holds it).
func buildConformance(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "conformance")
	cmd := exec.Command("go", "build", "-o", bin, conformanceModule)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", conformanceModule, err, out)
	}
	return bin
}

// conformanceData is the read-only content the suite is told about.
type conformanceData struct {
	Repo1, Repo2 string
	Tags         []string
	Manifests    []string
	Blobs        []string
}

// conformanceSummary holds the counts the runner prints.
type conformanceSummary struct {
	Result                            string
	Pass, Fail, Error, Skip, Disabled int
	// Failed names the tests that failed, e.g. "read-only/tag-list".
	Failed []string
	Output string
}

var summaryLine = regexp.MustCompile(`(?m)^\s+(Pass|FAIL|Error|Skip|Disabled)\.*:\s+(\d+)\s*$`)
var resultLine = regexp.MustCompile(`(?m)^OCI Conformance Result: (\S+)`)

// failedLeaf is a failing test line directly followed by its error line.
var failedLeaf = regexp.MustCompile(`(?m)^\s*OCI Conformance Test/(\S+): (?:FAIL|Error)\n\s+- `)

// runConformance runs the suite read-only against registry (host:port,
// plain http) and parses its printed summary. The runner crashes or fails
// while writing its YAML report after printing the summary; the summary is
// what counts.
func runConformance(ctx context.Context, t *testing.T, registry string, d conformanceData) conformanceSummary {
	t.Helper()
	bin := buildConformance(t)
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+registry,
		"OCI_TLS=disabled",
		"OCI_REPO1="+d.Repo1,
		"OCI_REPO2="+d.Repo2,
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=false",
		"OCI_API_REFERRER=false",
		"OCI_RO_DATA_TAGS="+strings.Join(d.Tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(d.Manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(d.Blobs, " "),
		"OCI_RESULTS_DIR="+filepath.Join(dir, "results"),
		"OCI_LOG=warn",
	)
	cmd.WaitDelay = 5 * time.Second
	out, _ := cmd.CombinedOutput() // judged by the summary, see above
	s := conformanceSummary{Output: string(out)}
	m := resultLine.FindStringSubmatch(s.Output)
	if m == nil {
		t.Fatalf("conformance runner printed no result summary:\n%s", s.Output)
	}
	s.Result = m[1]
	for _, m := range summaryLine.FindAllStringSubmatch(s.Output, -1) {
		n, _ := strconv.Atoi(m[2])
		switch m[1] {
		case "Pass":
			s.Pass = n
		case "FAIL":
			s.Fail = n
		case "Error":
			s.Error = n
		case "Skip":
			s.Skip = n
		case "Disabled":
			s.Disabled = n
		}
	}
	for _, m := range failedLeaf.FindAllStringSubmatch(s.Output, -1) {
		s.Failed = append(s.Failed, m[1])
	}
	return s
}

// seedConformance seeds repo1 of reg with an OCI image, a Docker image and
// an OCI index, and returns what the suite should be told.
func seedConformance(t *testing.T, reg *harness.Registry, repo1, repo2 string) conformanceData {
	t.Helper()
	d := conformanceData{Repo1: repo1, Repo2: repo2}
	oci := reg.SeedImage(t, repo1, "oci", harness.ImageSpec{Layers: 2, OCI: true})
	docker := reg.SeedImage(t, repo1, "docker", harness.ImageSpec{Layers: 2})
	idx := reg.SeedIndex(t, repo1, "multi", harness.ImageSpec{Layers: 1, OCI: true})
	reg.SeedImage(t, repo2, "other", harness.ImageSpec{Layers: 1})
	d.Tags = []string{"oci", "docker", "multi"}
	d.Manifests = []string{oci.Digest, docker.Digest, idx.Digest}
	d.Blobs = append(append(oci.Blobs(), docker.Blobs()...), idx.Images[0].Layers[0])
	for _, im := range idx.Images {
		d.Manifests = append(d.Manifests, im.Digest)
	}
	return d
}

// TestConformanceUpstreamBaseline runs the suite against the seeded Debian
// docker-registry itself, the upstream of the proxy tests. distribution 2.8
// fails two read-only tests: it returns the `last` tag again when paging
// the tag list, and answers a malformed digest with 500 instead of 400/404.
// That this test sees exactly those failures shows the runner and its
// summary parsing work (and can fail); the proxy is held to a full pass.
func TestConformanceUpstreamBaseline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	d := seedConformance(t, reg, "conformance/repo1", "conformance/repo2")
	s := runConformance(ctx, t, reg.Host, d)
	t.Logf("OCI conformance against docker-registry 2.8: result %s, %d passed, %d failed: %v", s.Result, s.Pass, s.Fail, s.Failed)
	want := []string{"read-only/tag-list", "invalid-digest-format/manifest-get"}
	if s.Pass < 30 || !slices.Equal(s.Failed, want) || s.Fail != len(want) || s.Error != 0 {
		t.Errorf("distribution 2.8 should pass everything but %v; got %d passed, failed %v:\n%s", want, s.Pass, s.Failed, s.Output)
	}
}
