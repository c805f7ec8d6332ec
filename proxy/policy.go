package proxy

import (
	"github.com/spacelift-io/tollgate/allowlist"
	"github.com/spacelift-io/tollgate/allowlist/name"
)

// Policy decides which upstream repositories may be pulled through the
// proxy. It decides on the name routing made and changes nothing in it.
type Policy interface {
	Decide(name.Repository) allowlist.Verdict
}

var _ Policy = (*allowlist.Policy)(nil)
