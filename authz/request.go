package authz

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/spacelift-io/tollgate/internal/oneline"
)

// Call is a daemon API request decoded the way the daemon itself routes
// it: the path percent-decoded and cleaned (the daemon's router redirects
// any other form instead of running it), the API version prefix split off.
type Call struct {
	Method string
	// Version is the API version of a /vN.NN/ prefix, "" without one.
	Version string
	// Path is the route path without the version prefix: /images/create.
	Path string
	// Query holds the query parameters; QueryErr is set when the query
	// does not parse (the daemon then refuses the request itself).
	Query    url.Values
	QueryErr error
	// Body is the JSON body the daemon forwarded, if any.
	Body    []byte
	headers map[string]string
}

// maxURILength bounds the request URI the decoder looks at.
const maxURILength = 64 << 10

var versionPrefix = regexp.MustCompile(`^/v([0-9.]+)(/.*)?$`)

// ErrMalformed is wrapped by Decode's errors: the request cannot be
// routed as the daemon would route it, so it is refused.
var ErrMalformed = errors.New("malformed request")

// Decode turns the daemon's AuthZReq into a Call. The request URI may be
// in origin form (/v1.41/images/create?...) or absolute form
// (http://docker/v1.41/...), with or without the version prefix.
func Decode(r *Request) (*Call, error) {
	if r.RequestMethod == "" || strings.ContainsAny(r.RequestMethod, " \t\r\n") || len(r.RequestMethod) > 32 {
		return nil, fmt.Errorf("%w: method %s", ErrMalformed, oneline.Quote(r.RequestMethod))
	}
	if r.RequestURI == "" || len(r.RequestURI) > maxURILength {
		return nil, fmt.Errorf("%w: request URI empty or longer than %d bytes", ErrMalformed, maxURILength)
	}
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return nil, fmt.Errorf("%w: request URI %s does not parse", ErrMalformed, oneline.Quote(r.RequestURI))
	}
	p := u.Path
	if p == "" || p[0] != '/' {
		return nil, fmt.Errorf("%w: request URI %s has no absolute path", ErrMalformed, oneline.Quote(r.RequestURI))
	}
	p = path.Clean(p)
	c := &Call{Method: strings.ToUpper(r.RequestMethod), Body: r.RequestBody, headers: r.RequestHeaders}
	if m := versionPrefix.FindStringSubmatch(p); m != nil {
		c.Version, p = m[1], m[2]
		if p == "" {
			p = "/"
		}
	}
	c.Path = p
	c.Query, c.QueryErr = url.ParseQuery(u.RawQuery)
	return c, nil
}

// Header returns the value of the request header name, matched without
// regard to case, and whether it was there. The daemon flattens repeated
// headers to their last value.
func (c *Call) Header(name string) (string, bool) {
	if v, ok := c.headers[name]; ok {
		return v, true
	}
	for k, v := range c.headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// param returns the one value of query parameter key ("" when absent). A
// parameter given twice is an error: the daemon would read the first and
// a reader of the last could be fooled.
func (c *Call) param(key string) (string, error) {
	if c.QueryErr != nil {
		return "", fmt.Errorf("the query string does not parse: %s; percent-encode the parameters", oneline.Cut(c.QueryErr.Error()))
	}
	vs := c.Query[key]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", fmt.Errorf("query parameter %s is given %d times; send it once", key, len(vs))
}

// hiddenBody says why the daemon may read parameters from a request body
// the plugin did not see, or "" when it cannot. The daemon reads form
// parameters from the body when the (first) Content-Type is a form, and
// forwards a body to plugins only when it is JSON; a request with no body
// at all has Content-Length 0, or neither Content-Length nor Content-Type
// (the daemon does not say whether a body is chunked).
func (c *Call) hiddenBody() string {
	if len(c.Body) > 0 {
		return "" // forwarded, so its Content-Type is JSON, not a form
	}
	cl, hasCL := c.Header("Content-Length")
	_, hasCT := c.Header("Content-Type")
	if hasCL && strings.TrimSpace(cl) == "0" {
		return ""
	}
	if !hasCL && !hasCT {
		return ""
	}
	if c.formBody() {
		return formWhy
	}
	return "it has a body the daemon did not pass to the plugin (a pull carries none); send the request without a body"
}

const formWhy = "it has a form body, from which the daemon would read parameters the plugin cannot see; send the parameters in the query string"

// formBody reports whether the request's Content-Type (as the plugin sees
// it: the last one sent) is a form, whose fields the daemon would read as
// parameters.
func (c *Call) formBody() bool {
	ct, ok := c.Header("Content-Type")
	if !ok {
		return false
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data"
}
