package ecr

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/internal/credsource"
)

// The kinds of failure the engine reports. Match them with errors.Is; the
// error returned is an *Error carrying the registry, the fix and the cause.
// They are defined in ecr/tokencache, so that docker-credential-tollgate,
// which reads the engine's answers without linking this package, matches
// the same values (tokencache.MintError).
var (
	// ErrNoCredentials: no source of the AWS default chain had credentials,
	// or the configured one is broken (missing profile, no instance role).
	ErrNoCredentials = tokencache.ErrNoCredentials
	// ErrIMDSUnreachable: the chain fell through to the EC2 instance role and
	// the instance metadata service did not answer.
	ErrIMDSUnreachable = tokencache.ErrIMDSUnreachable
	// ErrAccessDenied: AWS refused the credentials or the call.
	ErrAccessDenied = tokencache.ErrAccessDenied
	// ErrThrottled: AWS kept throttling past the retry budget.
	ErrThrottled = tokencache.ErrThrottled
	// ErrUnavailable: the AWS API failed (5xx, timeout, connection error)
	// past the retry budget.
	ErrUnavailable = tokencache.ErrUnavailable
	// ErrConfig: the engine's own settings for a registry are invalid.
	ErrConfig = tokencache.ErrConfig
)

// Error is a failure to get a token for one registry. Its message is one
// line: what failed, for which registry, why in short, and what to do. It
// never contains a token or a secret.
type Error struct {
	Kind   error  // one of the Err* sentinels above
	Host   string // the registry host
	Source string // the credential source, e.g. "instance role", "profile ci"
	Reason string // short cause (AWS error code and message), may be empty
	Fix    string // what the operator should do
	Err    error  // the underlying error, for logs
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Host != "" {
		b.WriteString(" for ")
		b.WriteString(e.Host)
	}
	if e.Source != "" {
		b.WriteString(" (credentials: ")
		b.WriteString(e.Source)
		b.WriteString(")")
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Fix != "" {
		b.WriteString(": ")
		b.WriteString(e.Fix)
	}
	return oneLine(b.String(), 600)
}

var _ credsource.TemporaryError = (*Error)(nil)

// Is makes errors.Is(err, ErrThrottled) etc. work.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Temporary reports a failure that is expected to pass on its own: AWS
// throttling or an outage of the AWS API or of the instance metadata
// service (tokencache.TemporaryKind). The engine serves a still-valid cached
// token through such an outage, and the proxy cached tags.
func (e *Error) Temporary() bool { return tokencache.TemporaryKind(e.Kind) }

// Unwrap exposes the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// fixes names the remedy for each kind.
var fixes = map[error]string{
	ErrNoCredentials:   "attach an instance role, or set AWS_PROFILE / AWS_ACCESS_KEY_ID (see docs/ecr.md)",
	ErrIMDSUnreachable: "on EC2 check the instance role and that IMDSv2 is enabled with hop limit >= 2 for containers; elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID",
	ErrAccessDenied:    "allow ecr:GetAuthorizationToken (ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken for ECR Public) to this identity, and check its keys are current",
	ErrThrottled:       "too many token requests for this account and region; share the token cache (TOLLGATE_CACHE_DIR) between processes or retry later",
	ErrUnavailable:     "the AWS API did not answer; check network access to the ECR endpoint and retry",
	ErrConfig:          "fix the ecr.registries entry in the tollgate config file",
}

func newError(kind error, host, source, reason string, cause error) *Error {
	return &Error{Kind: kind, Host: host, Source: source, Reason: reason, Fix: fixes[kind], Err: cause}
}

// oneLine collapses whitespace so that a message stays on one line, and cuts
// it at max bytes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// Codes of AWS API errors, by what they mean to us.
var (
	throttleCodes = map[string]bool{
		"ThrottlingException": true, "Throttling": true, "ThrottledException": true,
		"TooManyRequestsException": true, "RequestLimitExceeded": true,
		"RequestThrottled": true, "RequestThrottledException": true,
		"ProvisionedThroughputExceededException": true, "SlowDown": true,
		"LimitExceededException": true, "EC2ThrottledException": true,
	}
	deniedCodes = map[string]bool{
		"AccessDenied": true, "AccessDeniedException": true, "UnauthorizedOperation": true,
		"UnrecognizedClientException": true, "InvalidClientTokenId": true,
		"InvalidSignatureException": true, "SignatureDoesNotMatch": true,
		"ExpiredToken": true, "ExpiredTokenException": true, "InvalidToken": true,
		"AuthFailure": true, "IncompleteSignature": true, "MissingAuthenticationToken": true,
		"AccessDeniedForDependencyException": true, "RegionDisabledException": true,
	}
	unavailableCodes = map[string]bool{
		"ServerException": true, "InternalFailure": true, "InternalError": true,
		"ServiceUnavailable": true, "ServiceUnavailableException": true,
		"InternalServerError": true, "RequestTimeout": true, "RequestTimeoutException": true,
	}
)

// verdict is how a failure is reported: its kind (one of the Err*
// sentinels), a short reason, and whether it was recognised at all.
type verdict struct {
	kind   error
	reason string
	// known is false when the error is neither an AWS API error nor a
	// transport failure (a local problem).
	known bool
}

// classifyAPI sorts an error from an ECR, ECR Public or STS call into one of
// the kinds, with a short reason.
func classifyAPI(err error) verdict {
	var reason string
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		reason = code
		if msg := apiErr.ErrorMessage(); msg != "" {
			reason += ": " + msg
		}
		switch {
		case throttleCodes[code]:
			return verdict{ErrThrottled, reason, true}
		case deniedCodes[code]:
			return verdict{ErrAccessDenied, reason, true}
		case unavailableCodes[code]:
			return verdict{ErrUnavailable, reason, true}
		}
	}
	var respErr httpStatusError
	// A request that never got an answer (connection refused, DNS) still
	// carries the SDK's response wrapper, with status 0: that is a
	// transport failure, reported below.
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() != 0 {
		status := respErr.HTTPStatusCode()
		if reason == "" {
			reason = "HTTP " + strconv.Itoa(status)
		}
		switch {
		case status == 429:
			return verdict{ErrThrottled, reason, true}
		case status == 401 || status == 403:
			return verdict{ErrAccessDenied, reason, true}
		}
		return verdict{ErrUnavailable, reason, true}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return verdict{ErrUnavailable, "timed out", true}
	}
	if errors.Is(err, context.Canceled) {
		return verdict{ErrUnavailable, "canceled", true}
	}
	if isTransport(err) {
		return verdict{ErrUnavailable, "cannot reach the endpoint: " + innermost(err), true}
	}
	if reason != "" { // an API error with a code we do not know
		return verdict{ErrUnavailable, reason, true}
	}
	return verdict{ErrUnavailable, innermost(err), false}
}

// classifyCredentials sorts a failure to obtain credentials from src.
func classifyCredentials(err error, info sourceInfo) verdict {
	if info.imdsDisabled {
		return verdict{ErrNoCredentials, "the chain ends at the instance role and AWS_EC2_METADATA_DISABLED=true", true}
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) && oe.Service() == "ec2imds" {
		var re httpStatusError
		if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
			return verdict{ErrNoCredentials, "the instance metadata service has no IAM role for this instance", true}
		}
		if errors.As(err, &re) && re.HTTPStatusCode() == 429 {
			// Reachable, and limiting this instance's request rate.
			return verdict{ErrThrottled, "the instance metadata service throttled the request (HTTP 429)", true}
		}
		return verdict{ErrIMDSUnreachable, innermost(err), true}
	}
	v := classifyAPI(err)
	if !v.known {
		v.kind = ErrNoCredentials
	}
	return v
}

// httpStatusError is an HTTP response error of the SDK (smithy-go's and the
// AWS wrapper around it both have this method).
type httpStatusError interface {
	error
	HTTPStatusCode() int
}

// retryable reports whether an error kind is worth another attempt.
func retryable(kind error) bool { return kind == ErrThrottled || kind == ErrUnavailable }

// isTransport reports a failure to reach an endpoint: the SDK's
// RequestSendError, or a socket or DNS error. (net.Error alone is too broad:
// syscall.Errno has its methods, so a missing file would look like one.)
func isTransport(err error) bool {
	var se interface{ ConnectionError() bool }
	if errors.As(err, &se) && se.ConnectionError() {
		return true
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr)
}

// innermost returns the message of the deepest wrapped error, which for SDK
// errors is the specific cause rather than the operation banner.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// opaqueCause stands in for an error from the credential chain, whose full
// text may quote secrets: the SDK's credential_process provider puts the
// process's whole output (secret key, session token) in its error when it
// cannot parse it. Its message is only the innermost cause, which is what
// the engine reports anyway; errors.Is and errors.As still see the chain.
type opaqueCause struct{ err error }

func (c opaqueCause) Error() string { return innermost(c.err) }
func (c opaqueCause) Unwrap() error { return c.err }
