package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/spacelift-io/tollgate/internal/oneline"
)

// Request is what the daemon sends to /AuthZPlugin.AuthZReq (and, with the
// response fields filled, to /AuthZPlugin.AuthZRes). The daemon never
// includes the Authorization, X-Registry-Auth or X-Registry-Config headers;
// it includes the body only for Content-Type application/json up to 1 MiB.
type Request struct {
	User            string            `json:"User,omitempty"`
	UserAuthNMethod string            `json:"UserAuthNMethod,omitempty"`
	RequestMethod   string            `json:"RequestMethod,omitempty"`
	RequestURI      string            `json:"RequestUri,omitempty"`
	RequestBody     []byte            `json:"RequestBody,omitempty"`
	RequestHeaders  map[string]string `json:"RequestHeaders,omitempty"`
}

// Response is the plugin's answer. The daemon refuses the request when
// Allow is false and prints "authorization denied by plugin NAME: Msg".
type Response struct {
	Allow bool   `json:"Allow"`
	Msg   string `json:"Msg,omitempty"`
	Err   string `json:"Err,omitempty"`
}

// Plugin API paths.
const (
	pathActivate = "/Plugin.Activate"
	pathAuthZReq = "/AuthZPlugin.AuthZReq"
	pathAuthZRes = "/AuthZPlugin.AuthZRes"
)

// maxRequestSize bounds an AuthZReq: the daemon forwards at most 1 MiB of
// body, which base64 makes 1.4 MB, plus the URI and headers.
const maxRequestSize = 4 << 20

// contentType is what Docker plugins answer with.
const contentType = "application/vnd.docker.plugins.v1.2+json"

// Handler serves the authorization plugin protocol over HTTP (the daemon
// speaks it on the plugin's unix socket). It never calls the network.
type Handler struct {
	policy  *Policy
	log     *slog.Logger
	metrics *Metrics
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the plugin's HTTP handler for policy. log gets one
// line per refusal (and per allowed request at debug level); m, when not
// nil, counts every decision.
func NewHandler(policy *Policy, log *slog.Logger, m *Metrics) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{policy: policy, log: log, metrics: m}
}

// ServeHTTP answers Plugin.Activate, AuthZReq and AuthZRes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "the plugin API takes POST", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case pathActivate:
		reply(w, map[string][]string{"Implements": {"authz"}})
	case pathAuthZReq:
		reply(w, h.authorize(r.Body))
	case pathAuthZRes:
		// Responses are never refused: what the daemon answers does not
		// fetch anything. The body (which may be large) is read and dropped
		// so that the connection can be reused.
		io.Copy(io.Discard, r.Body)
		reply(w, Response{Allow: true})
	default:
		http.Error(w, "unknown plugin API path", http.StatusNotFound)
	}
}

// authorize decides one AuthZReq. Whatever goes wrong, the answer is a
// refusal with a message.
func (h *Handler) authorize(body io.Reader) Response {
	start := time.Now()
	var req Request
	data, err := io.ReadAll(io.LimitReader(body, maxRequestSize+1))
	switch {
	case err != nil:
		err = fmt.Errorf("reading the daemon's request: %w", err)
	case len(data) > maxRequestSize:
		err = fmt.Errorf("the daemon's request is larger than %d bytes", maxRequestSize)
	default:
		if jerr := json.Unmarshal(data, &req); jerr != nil {
			err = fmt.Errorf("the daemon's request is not valid JSON: %w", jerr)
		}
	}
	var d Decision
	if err != nil {
		d = Decision{Rule: RuleRequest, What: "request", Reason: oneline.Cut(err.Error()) + "; the request is refused (fail closed)"}
	} else {
		d = h.policy.Authorize(&req)
	}
	h.record(d, time.Since(start))
	if d.Allowed {
		return Response{Allow: true}
	}
	return Response{Msg: d.Message()}
}

func (h *Handler) record(d Decision, took time.Duration) {
	h.metrics.observe(d, took)
	if d.Allowed {
		if h.log.Enabled(context.Background(), slog.LevelDebug) {
			h.log.Debug("authz allow", d.attrs()...)
		}
		return
	}
	h.log.Warn("authz deny", d.attrs()...)
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", contentType)
	// An error here is the daemon hanging up; it then refuses the request.
	_ = json.NewEncoder(w).Encode(v)
}
