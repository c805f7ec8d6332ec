// Package refresh keeps ECR registry tokens written where tools that cannot
// run a credential helper read them: the auths of a docker config, or a
// Kubernetes image pull Secret. It asks a Minter (the ECR token engine) for
// each registry's token, writes the ones it got, and never removes or
// replaces an entry for a registry whose refresh failed. Loop repeats that
// ahead of each token's expiry, with jitter.
package refresh
