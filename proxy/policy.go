package proxy

import "github.com/spacelift-io/tollgate/allowlist"

// Policy decides which upstream repositories may be pulled through the
// proxy. allowlist.Policy implements it.
type Policy interface {
	CheckRepository(host, repository string) allowlist.Verdict
}
