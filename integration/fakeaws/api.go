package fakeaws

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// protocol is the AWS wire protocol a service speaks.
type protocol int

const (
	awsJSON11 protocol = iota // POST, X-Amz-Target, JSON bodies, __type errors
	awsQuery                  // POST form Action=..., XML bodies, ErrorResponse errors
)

// service describes one fake endpoint.
type service struct {
	prefix      string // API name prefix for Calls: ecr, ecrpublic, sts
	signingName string // SigV4 service name
	region      string // required signing region, "" = any
	protocol    protocol
	target      string // awsJSON11: X-Amz-Target service prefix
	xmlns       string // awsQuery: response namespace
	version     string // awsQuery: API version
	ops         map[string]func(s *Server, c *credential, req *apiRequest) (any, *apiError)
}

// apiRequest is a decoded request handed to an operation.
type apiRequest struct {
	region string // signing region
	body   []byte // JSON body (awsJSON11)
	form   url.Values
}

// apiError is an error answer, rendered per protocol.
type apiError struct {
	status  int
	code    string
	message string
}

var (
	serviceECR = &service{
		prefix: "ecr", signingName: "ecr", protocol: awsJSON11,
		target: "AmazonEC2ContainerRegistry_V20150921",
		ops: map[string]func(*Server, *credential, *apiRequest) (any, *apiError){
			"GetAuthorizationToken": (*Server).ecrGetAuthorizationToken,
		},
	}
	serviceECRPublic = &service{
		prefix: "ecrpublic", signingName: "ecr-public", region: "us-east-1", protocol: awsJSON11,
		target: "SpencerFrontendService",
		ops: map[string]func(*Server, *credential, *apiRequest) (any, *apiError){
			"GetAuthorizationToken": (*Server).ecrPublicGetAuthorizationToken,
		},
	}
	serviceSTS = &service{
		prefix: "sts", signingName: "sts", protocol: awsQuery,
		xmlns: "https://sts.amazonaws.com/doc/2011-06-15/", version: "2011-06-15",
		ops: map[string]func(*Server, *credential, *apiRequest) (any, *apiError){
			"GetCallerIdentity": (*Server).stsGetCallerIdentity,
			"AssumeRole":        (*Server).stsAssumeRole,
		},
	}
)

// authError renders an authentication failure as this service does.
func (svc *service) authError(e *authError) *apiError {
	if svc.protocol == awsQuery {
		switch e.kind {
		case authMissing:
			return &apiError{403, "MissingAuthenticationToken", "Request is missing Authentication Token"}
		case authIncomplete:
			return &apiError{400, "IncompleteSignature", e.msg}
		case authUnknownKey:
			return &apiError{403, "InvalidClientTokenId", e.msg}
		case authExpired:
			return &apiError{400, "ExpiredToken", e.msg}
		default:
			return &apiError{403, "SignatureDoesNotMatch", e.msg}
		}
	}
	switch e.kind {
	case authMissing:
		return &apiError{403, "MissingAuthenticationTokenException", e.msg}
	case authIncomplete:
		return &apiError{400, "IncompleteSignatureException", e.msg}
	case authUnknownKey:
		return &apiError{400, "UnrecognizedClientException", e.msg}
	case authExpired:
		return &apiError{400, "ExpiredTokenException", e.msg}
	default:
		return &apiError{400, "InvalidSignatureException", e.msg}
	}
}

func (svc *service) throttleError() *apiError {
	if svc.protocol == awsQuery {
		return &apiError{400, "Throttling", "Rate exceeded"}
	}
	return &apiError{400, "ThrottlingException", "Rate exceeded"}
}

func (svc *service) failError(f Fault) *apiError {
	e := &apiError{f.Status, f.Code, "We encountered an internal error. Please try again."}
	if e.status == 0 {
		e.status = http.StatusInternalServerError
	}
	if e.code == "" {
		e.code = "ServerException"
		if svc.protocol == awsQuery {
			e.code = "InternalFailure"
		}
	}
	return e
}

func (svc *service) denyError(c *credential, op string) *apiError {
	msg := "User: " + c.arn + " is not authorized to perform: " + svc.signingName + ":" + op +
		" on resource: * because no identity-based policy allows the " + svc.signingName + ":" + op + " action"
	if svc.protocol == awsQuery {
		return &apiError{403, "AccessDenied", msg}
	}
	return &apiError{400, "AccessDeniedException", msg}
}

// apiHandler serves one AWS API endpoint.
func (s *Server) apiHandler(svc *service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return
		}
		op, req, perr := svc.decode(r, body)
		api := svc.prefix + "." + op
		if op == "" {
			api = svc.prefix + ".unknown"
		}
		throttle, fail, f := s.count(api)
		sleep(r.Context(), f.Delay)
		if r.Context().Err() != nil {
			return
		}
		cred, aerr := s.verify(r, body, svc)
		if aerr != nil {
			svc.writeError(w, svc.authError(aerr))
			return
		}
		if perr != nil {
			svc.writeError(w, perr)
			return
		}
		handler := svc.ops[op]
		switch {
		case handler == nil:
			if svc.protocol == awsQuery {
				svc.writeError(w, &apiError{400, "InvalidAction", "Could not find operation " + op + " for version " + svc.version})
			} else {
				svc.writeError(w, &apiError{400, "UnknownOperationException", ""})
			}
			return
		case throttle:
			svc.writeError(w, svc.throttleError())
			return
		case fail:
			svc.writeError(w, svc.failError(f))
			return
		case f.Deny:
			svc.writeError(w, svc.denyError(cred, op))
			return
		}
		req.region = authRegion(r)
		out, oerr := handler(s, cred, req)
		if oerr != nil {
			svc.writeError(w, oerr)
			return
		}
		svc.writeResult(w, op, out)
	})
}

// authRegion returns the region of the (already verified) credential scope.
func authRegion(r *http.Request) string {
	h, _ := parseAuthorization(r.Header.Get("Authorization"))
	return h.region
}

// decode extracts the operation name and its input. A malformed request
// still yields the operation name when there is one, so it is counted.
func (svc *service) decode(r *http.Request, body []byte) (string, *apiRequest, *apiError) {
	req := &apiRequest{body: body}
	if r.Method != http.MethodPost {
		return "", req, &apiError{405, "MethodNotAllowed", "Only POST is accepted"}
	}
	if svc.protocol == awsQuery {
		form, err := url.ParseQuery(string(body))
		if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			return "", req, &apiError{400, "MalformedQueryString", "The request body is not a form"}
		}
		req.form = form
		op := form.Get("Action")
		if form.Get("Version") != svc.version {
			return op, req, &apiError{400, "InvalidAction", "Could not find operation " + op + " for version " + form.Get("Version")}
		}
		return op, req, nil
	}
	prefix, op, ok := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	if !ok || prefix != svc.target {
		return "", req, &apiError{400, "UnknownOperationException", ""}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		return op, req, &apiError{400, "SerializationException", "Content-Type must be application/x-amz-json-1.1"}
	}
	if len(body) > 0 && !json.Valid(body) {
		return op, req, &apiError{400, "SerializationException", "Request body is not valid JSON"}
	}
	return op, req, nil
}

func (svc *service) writeError(w http.ResponseWriter, e *apiError) {
	id := requestID()
	w.Header().Set("X-Amzn-Requestid", id)
	if svc.protocol == awsQuery {
		typ := "Sender"
		if e.status >= 500 {
			typ = "Receiver"
		}
		type errorBody struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		body := struct {
			XMLName   xml.Name  `xml:"ErrorResponse"`
			Xmlns     string    `xml:"xmlns,attr"`
			Error     errorBody `xml:"Error"`
			RequestID string    `xml:"RequestId"`
		}{Xmlns: svc.xmlns, Error: errorBody{typ, e.code, e.message}, RequestID: id}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(e.status)
		_ = xml.NewEncoder(w).Encode(body)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", e.code+":")
	w.WriteHeader(e.status)
	body := map[string]string{"__type": e.code}
	if e.message != "" {
		body["message"] = e.message
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (svc *service) writeResult(w http.ResponseWriter, op string, out any) {
	id := requestID()
	w.Header().Set("X-Amzn-Requestid", id)
	if svc.protocol == awsQuery {
		// <OpResponse xmlns=...><OpResult>...</OpResult><ResponseMetadata>...</ResponseMetadata></OpResponse>
		type metadata struct {
			RequestID string `xml:"RequestId"`
		}
		body := struct {
			XMLName  xml.Name
			Xmlns    string `xml:"xmlns,attr"`
			Result   any
			Metadata metadata `xml:"ResponseMetadata"`
		}{XMLName: xml.Name{Local: op + "Response"}, Xmlns: svc.xmlns, Result: out, Metadata: metadata{id}}
		w.Header().Set("Content-Type", "text/xml")
		_ = xml.NewEncoder(w).Encode(body)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}
