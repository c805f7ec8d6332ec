// Package doctor checks, on the host it runs on, what tollgate needs: the
// configuration and its allowlist, the docker config directory and the
// token cache, the AWS credential chain, IMDSv2, ECR, the proxy, its shared
// cache tier and the fleet's lease store. Each
// check is bounded by a short timeout, so a service that never answers
// fails its check instead of hanging the run, and each failure says what to
// do about it.
package doctor
