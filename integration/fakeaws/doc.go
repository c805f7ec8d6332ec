// Package fakeaws runs loopback HTTP servers that speak the AWS APIs tollgate
// uses exactly as AWS does at the wire: the EC2 instance metadata service
// (IMDSv2), ECR and ECR Public GetAuthorizationToken (awsJson1_1) and STS
// GetCallerIdentity and AssumeRole (query protocol, XML answers).
//
// It exists so that tests and benchmarks run the real aws-sdk-go-v2 client
// code end to end, pointed at these servers only through the SDK's standard
// settings (AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_ENDPOINT_URL_ECR,
// AWS_ENDPOINT_URL_ECR_PUBLIC, AWS_ENDPOINT_URL_STS; see Server.Env).
//
// Every API request's SigV4 signature is verified against the secret the
// server issued or was given, and failures answer with the codes AWS uses
// (InvalidSignatureException / SignatureDoesNotMatch, UnrecognizedClientException
// / InvalidClientTokenId, ExpiredTokenException / ExpiredToken). Calls are
// counted per API, and faults (throttling, server errors, access denied,
// delays) can be injected per API. Registry tokens it mints are random, unique
// per mint and remembered with the principal they were minted for, so that a
// fake registry can validate them with CheckToken.
//
// It is test infrastructure, not product code: nothing in tollgate imports it
// outside tests and the bench programs.
package fakeaws
