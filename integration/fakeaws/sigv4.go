package fakeaws

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// authFailure classifies why a request was not authenticated; each protocol
// renders it with its own code (see service.authError).
type authFailure int

const (
	authMissing      authFailure = iota // no Authorization header
	authIncomplete                      // malformed Authorization header
	authUnknownKey                      // access key or session token not known
	authBadSignature                    // signature, scope or date wrong
	authExpired                         // temporary credentials past expiry
)

type authError struct {
	kind authFailure
	msg  string
}

const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	amzDateFormat = "20060102T150405Z"
	badSigMessage = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// sigv4Header is the parsed Authorization header.
type sigv4Header struct {
	accessKeyID   string
	date, region  string
	service       string
	signedHeaders []string
	signature     string
}

func parseAuthorization(v string) (sigv4Header, bool) {
	var h sigv4Header
	rest, ok := strings.CutPrefix(v, sigAlgorithm+" ")
	if !ok {
		return h, false
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return h, false
		}
		fields[k] = val
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return h, false
	}
	h.accessKeyID, h.date, h.region, h.service = scope[0], scope[1], scope[2], scope[3]
	h.signedHeaders = strings.Split(fields["SignedHeaders"], ";")
	h.signature = fields["Signature"]
	return h, true
}

// verify checks the SigV4 signature of r (whose body is body) for the
// signing name svc.signingName and returns the credential that signed it.
func (s *Server) verify(r *http.Request, body []byte, svc *service) (*credential, *authError) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return nil, &authError{authMissing, "Missing Authentication Token"}
	}
	h, ok := parseAuthorization(authz)
	if !ok {
		return nil, &authError{authIncomplete, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters, and the algorithm AWS4-HMAC-SHA256."}
	}

	s.mu.Lock()
	c := s.creds[h.accessKeyID]
	var cc credential
	if c != nil {
		cc = *c
	}
	s.mu.Unlock()
	if c == nil {
		return nil, &authError{authUnknownKey, "The security token included in the request is invalid."}
	}
	if cc.sessionToken != "" && r.Header.Get("X-Amz-Security-Token") != cc.sessionToken {
		return nil, &authError{authUnknownKey, "The security token included in the request is invalid."}
	}
	if cc.sessionToken == "" && r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, &authError{authUnknownKey, "The security token included in the request is invalid."}
	}

	if h.service != svc.signingName {
		return nil, &authError{authBadSignature, fmt.Sprintf("Credential should be scoped to correct service: '%s'.", svc.signingName)}
	}
	if h.region == "" || (svc.region != "" && h.region != svc.region) {
		return nil, &authError{authBadSignature, "Credential should be scoped to a valid region."}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return nil, &authError{authIncomplete, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}
	}
	if !strings.HasPrefix(amzDate, h.date) || len(h.date) != 8 {
		return nil, &authError{authBadSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP."}
	}
	// AWS's own wording, e.g. "Signature expired: 20260101T000000Z is now
	// earlier than 20260101T000100Z (20260101T000600Z - 5 min.)".
	now := time.Now().UTC()
	if skew := now.Sub(t); skew > s.opts.MaxSkew {
		return nil, &authError{authBadSignature, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s.)",
			amzDate, now.Add(-s.opts.MaxSkew).Format(amzDateFormat), now.Format(amzDateFormat), skewText(s.opts.MaxSkew))}
	} else if -skew > s.opts.MaxSkew {
		return nil, &authError{authBadSignature, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %s.)",
			amzDate, now.Add(s.opts.MaxSkew).Format(amzDateFormat), now.Format(amzDateFormat), skewText(s.opts.MaxSkew))}
	}
	signed := map[string]bool{}
	for _, name := range h.signedHeaders {
		signed[name] = true
	}
	if !signed["host"] || !signed["x-amz-date"] {
		return nil, &authError{authBadSignature, "'Host' and 'X-Amz-Date' must be signed headers."}
	}
	if r.Header.Get("X-Amz-Security-Token") != "" && !signed["x-amz-security-token"] {
		return nil, &authError{authBadSignature, "'X-Amz-Security-Token' must be a signed header."}
	}

	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" && v != payloadHash {
		return nil, &authError{authBadSignature, "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}

	canonical := canonicalRequest(r, h.signedHeaders, payloadHash)
	scope := strings.Join([]string{h.date, h.region, h.service, "aws4_request"}, "/")
	crSum := sha256.Sum256([]byte(canonical))
	stringToSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	key := hmacSHA256([]byte("AWS4"+cc.secret), h.date)
	key = hmacSHA256(key, h.region)
	key = hmacSHA256(key, h.service)
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if !hmac.Equal([]byte(want), []byte(h.signature)) {
		return nil, &authError{authBadSignature, badSigMessage}
	}

	if !cc.expires.IsZero() && !time.Now().Before(cc.expires) {
		return nil, &authError{authExpired, "The security token included in the request is expired"}
	}
	return &cc, nil
}

// skewText renders the allowed skew as AWS does in its messages ("5 min").
func skewText(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return d.String()
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalRequest builds the SigV4 canonical request of r as received.
func canonicalRequest(r *http.Request, signedHeaders []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	// Services other than S3 encode the (already escaped) path once more.
	b.WriteString(uriEncode(path, false))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, name := range signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// headerValue is the canonical value of a signed header: values trimmed,
// inner runs of spaces folded, joined by commas.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			vals = v
		} else {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return raw // signature will not match: the client sent garbage
	}
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEncode(k, true)+"="+uriEncode(v, true))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// uriEncode percent-encodes every byte except the unreserved characters
// (and '/' unless encodeSlash), as SigV4 requires.
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
