package allowlist_test

import (
	"fmt"

	"github.com/spacelift-io/tollgate/allowlist"
)

func Example() {
	policy, err := allowlist.New([]string{
		"docker.io/library/*",
		"*.azurecr.io",
		"ghcr.io/myorg/*",
	})
	if err != nil {
		panic(err)
	}
	for _, ref := range []string{
		"alpine:3.20",
		"myreg.azurecr.io/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"ghcr.io/myorg/tools/lint",
		"ghcr.io/myorgevil/x",
		"azurecr.io.evil.example/app",
	} {
		v := policy.Check(ref)
		fmt.Println(v.Allowed, v.Reference)
		fmt.Println("  ", v.Reason)
	}
	// Output:
	// true docker.io/library/alpine:3.20
	//    allowed by allowlist pattern "docker.io/library/*"
	// true myreg.azurecr.io/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	//    allowed by allowlist pattern "*.azurecr.io"
	// true ghcr.io/myorg/tools/lint:latest
	//    allowed by allowlist pattern "ghcr.io/myorg/*"
	// false ghcr.io/myorgevil/x:latest
	//    repository myorgevil/x on ghcr.io is not allowed: the allowlist names this host only as "ghcr.io/myorg/*"; add "ghcr.io/myorgevil/x" (or a prefix ending in /*) to allowlist: in the tollgate config
	// false azurecr.io.evil.example/app:latest
	//    registry host azurecr.io.evil.example is not in the allowlist; add "azurecr.io.evil.example" (or a pattern covering it) to allowlist: in the tollgate config
}

func ExampleCanonicalHost() {
	for _, h := range []string{"Registry-1.Docker.IO", "ghcr.io.:443", "[0:0::1]:5000", "ghcr.io:0"} {
		c, err := allowlist.CanonicalHost(h)
		fmt.Printf("%q %v\n", c, err)
	}
	// Output:
	// "docker.io" <nil>
	// "ghcr.io" <nil>
	// "[::1]:5000" <nil>
	// "" invalid registry host "ghcr.io:0": port "0" is not a number from 1 to 65535
}
