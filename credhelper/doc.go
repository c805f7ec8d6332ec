// Package credhelper answers docker credential helper requests: ECR hosts
// through the ecr token engine, every other registry from the logins in the
// docker config directory named by SPACELIFT_DOCKER_CONFIG_DIR.
//
// Its Resolver is also the proxy's credential source. Both speak the
// internal/credsource contract: "no credentials for this registry" is an
// error with a NotFound() marker (the helper turns it into the protocol's
// "credentials not found"), and a failure that will pass on its own says
// Temporary().
package credhelper
