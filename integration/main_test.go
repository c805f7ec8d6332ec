package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// TestMain makes loopback the only place this package's subprocesses can
// reach by default: AWS endpoints (IMDS included) point at a loopback port
// where nothing listens, and HTTP(S) to anything else goes to a dead
// loopback proxy. A test that wants the fake AWS servers sets their
// addresses itself (fakeaws.Environ/Env), which overrides these.
func TestMain(m *testing.M) {
	const dead = "http://127.0.0.1:9"
	for _, kv := range [][2]string{
		{"AWS_EC2_METADATA_SERVICE_ENDPOINT", dead},
		{"AWS_ENDPOINT_URL", dead},
	} {
		if os.Getenv(kv[0]) == "" {
			os.Setenv(kv[0], kv[1])
		}
	}
	for _, kv := range harness.LoopbackOnlyEnv() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	os.Exit(m.Run())
}
