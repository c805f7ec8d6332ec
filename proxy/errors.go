package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error codes of tollgate's own, for situations distribution has no code for.
// They render like every other OCI error.
var (
	errCodeNotFound = errcode.Register("tollgate", errcode.ErrorDescriptor{
		Value:          "NOT_FOUND",
		Message:        "not found",
		Description:    "The path is not part of the OCI distribution API.",
		HTTPStatusCode: http.StatusNotFound,
	})
	errCodeUpstreamUnavailable = errcode.Register("tollgate", errcode.ErrorDescriptor{
		Value:          "UPSTREAM_UNAVAILABLE",
		Message:        "upstream registry unavailable",
		Description:    "The upstream registry could not be reached or answered with a server error, and nothing cached can answer instead.",
		HTTPStatusCode: http.StatusBadGateway,
	})
)

var errNotFound = errCodeNotFound.WithMessage("not found: not an OCI distribution API path")

// writeError renders err as an OCI error body with the status its code
// carries. Errors that are not errcode errors are internal: the client gets
// UNKNOWN (500) and the detail stays in the log.
func writeError(w http.ResponseWriter, err error) {
	var coder errcode.ErrorCoder
	if !errors.As(err, &coder) {
		err = errcode.ErrorCodeUnknown.WithMessage("internal error in tollgate proxy; see its log")
	}
	if err := errcode.ServeJSON(w, err); err != nil {
		// The client went away; nothing left to tell it.
		return
	}
}

// upstreamError is what an upstream registry answered when it did not
// answer with what we asked for.
type upstreamError struct {
	Host   string
	Status int
	// Errors is the upstream's OCI error body, when it sent one.
	Errors errcode.Errors
	// RetryAfter is the upstream's Retry-After header on 429/503.
	RetryAfter string
	// Unusable: the upstream answered, but with content tollgate cannot
	// serve (wrong digest, truncated, not a manifest); Status is then the
	// 502 the client gets, not what the upstream sent.
	Unusable bool
}

func (e *upstreamError) Error() string {
	msg := fmt.Sprintf("upstream %s answered %d %s", e.Host, e.Status, http.StatusText(e.Status))
	if e.Unusable {
		msg = fmt.Sprintf("upstream %s sent an answer that cannot be served", e.Host)
	}
	if len(e.Errors) > 0 {
		msg += ": " + e.Errors.Error()
	}
	return msg
}

// temporary reports whether a cached copy should answer instead: the
// upstream is throttling or failing.
func (e *upstreamError) temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// readUpstreamError consumes a non-success upstream response.
func readUpstreamError(host string, resp *http.Response) *upstreamError {
	e := &upstreamError{Host: host, Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail,omitempty"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) == nil {
		for _, x := range env.Errors {
			code := errcode.ParseErrorCode(x.Code)
			var detail any
			if len(x.Detail) > 0 && string(x.Detail) != "null" {
				detail = x.Detail
			}
			e.Errors = append(e.Errors, errcode.Error{Code: code, Message: x.Message, Detail: detail})
		}
	}
	return e
}

// clientError turns an upstream answer into what the client gets. The codes
// the upstream sent are kept (they say NAME_UNKNOWN vs MANIFEST_UNKNOWN, and
// why access was refused); the HTTP status follows the upstream's, except that
// a server error becomes UPSTREAM_UNAVAILABLE (502).
func (e *upstreamError) clientError(fallback errcode.ErrorCode) (int, error) {
	switch {
	case e.Status == http.StatusTooManyRequests:
		return e.Status, errcode.ErrorCodeTooManyRequests.WithMessage(e.Error())
	case e.Status >= 500:
		return http.StatusBadGateway, errCodeUpstreamUnavailable.WithMessage(e.Error())
	case e.Status == http.StatusUnauthorized:
		return e.Status, errcode.ErrorCodeUnauthorized.WithMessage(e.Error())
	case e.Status == http.StatusForbidden:
		return e.Status, errcode.ErrorCodeDenied.WithMessage(e.Error())
	case e.Status == http.StatusNotFound:
		if len(e.Errors) > 0 {
			if ec, ok := e.Errors[0].(errcode.Error); ok && ec.Code.Descriptor().HTTPStatusCode == http.StatusNotFound {
				return e.Status, ec
			}
		}
		return e.Status, fallback.WithMessage(e.Error())
	case len(e.Errors) > 0:
		return e.Status, e.Errors
	}
	return e.Status, errcode.ErrorCodeUnknown.WithMessage(e.Error())
}

// writeUpstreamError relays an upstream refusal to the client.
func writeUpstreamError(w http.ResponseWriter, e *upstreamError, fallback errcode.ErrorCode) {
	status, err := e.clientError(fallback)
	if validRetryAfter(e.RetryAfter) {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var errs errcode.Errors
	if ee, ok := err.(errcode.Errors); ok {
		errs = ee
	} else {
		errs = errcode.Errors{err}
	}
	_ = json.NewEncoder(w).Encode(errs)
}

// validRetryAfter reports whether v is a Retry-After value HTTP allows:
// delay-seconds or an HTTP date (RFC 9110, 10.2.3). Nothing else the
// upstream sent is passed on.
func validRetryAfter(v string) bool {
	if v == "" {
		return false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n >= 0
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// upstreamDiagnostic converts one of ggcr's error diagnostics.
func upstreamDiagnostic(d transport.Diagnostic) errcode.Error {
	return errcode.Error{Code: errcode.ParseErrorCode(string(d.Code)), Message: d.Message}
}

// badUpstream is an upstream answer that cannot be served: the client gets
// 502 with what was wrong.
func badUpstream(host string, code errcode.ErrorCode, msg string) error {
	return &upstreamError{Host: host, Status: http.StatusBadGateway, Unusable: true, Errors: errcode.Errors{code.WithMessage(msg)}}
}
