package proxy

import "github.com/spacelift-io/tollgate/allowlist/name"

// testRepo is the canonical name of repository path on testHost.
func testRepo(path string) name.Repository {
	return name.Repository{Host: testHost, Path: path}
}
