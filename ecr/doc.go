// Package ecr is the Amazon ECR token engine: it mints registry tokens from
// the host's AWS credentials (the aws-sdk-go-v2 default chain, the region
// taken from the registry host, optional per-registry profile and role),
// retries throttling and outages within a budget, reports failures as typed
// one-line errors, and caches tokens in process (go-cache) and on disk,
// shared by every process of the user with a cross-process single flight.
//
// The parts that need no AWS SDK live in subpackages, so that the credential
// helper's warm path can use them without the SDK's start-up cost:
// ecr/ecrhost recognises registry hosts, ecr/tokencache fingerprints the
// credential source and reads and writes the cache entries.
package ecr
