package fakeaws

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	imdsTTLHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsTokenHeader = "X-Aws-Ec2-Metadata-Token"
	imdsCredsPath   = "/latest/meta-data/iam/security-credentials/"
)

// serveIMDS answers as the EC2 instance metadata service does with IMDSv2
// required: every GET must carry a session token from PUT /latest/api/token.
func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	api := imdsAPI(r.URL.Path)
	throttle, fail, f := s.count(api)
	sleep(r.Context(), f.Delay)
	if r.Context().Err() != nil {
		return
	}
	switch {
	case throttle:
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
		return
	case fail:
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		http.Error(w, http.StatusText(status), status)
		return
	case f.Deny:
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}

	if api == APIIMDSToken {
		s.imdsToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.imdsTokenValid(r.Header.Get(imdsTokenHeader)) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}

	switch api {
	case APIIMDSRole:
		s.mu.Lock()
		role := s.role
		s.mu.Unlock()
		if role == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(role.name))
	case APIIMDSCredentials:
		name := strings.TrimPrefix(r.URL.Path, imdsCredsPath)
		s.mu.Lock()
		var c *credential
		if s.role != nil && s.role.name == name {
			c = s.currentInstanceCredLocked()
		}
		s.mu.Unlock()
		if c == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"Code":            "Success",
			"LastUpdated":     c.issued.UTC().Format(time.RFC3339),
			"Type":            "AWS-HMAC",
			"AccessKeyId":     c.accessKeyID,
			"SecretAccessKey": c.secret,
			"Token":           c.sessionToken,
			"Expiration":      c.expires.UTC().Format(time.RFC3339),
		})
	case APIIMDSRegion:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(s.opts.IMDSRegion))
	case APIIMDSIdentity:
		s.mu.Lock()
		account := "123456789012"
		if s.role != nil {
			account = arnAccount(s.role.roleARN)
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"accountId":        account,
			"architecture":     "x86_64",
			"availabilityZone": s.opts.IMDSRegion + "a",
			"imageId":          "ami-0123456789abcdef0",
			"instanceId":       s.opts.InstanceID,
			"instanceType":     "m5.large",
			"pendingTime":      "2026-01-01T00:00:00Z",
			"privateIp":        "10.0.0.10",
			"region":           s.opts.IMDSRegion,
			"version":          "2017-09-30",
		})
	default:
		if r.URL.Path == "/latest/meta-data/instance-id" {
			_, _ = w.Write([]byte(s.opts.InstanceID))
			return
		}
		http.NotFound(w, r)
	}
}

func imdsAPI(path string) string {
	switch {
	case path == "/latest/api/token":
		return APIIMDSToken
	case path == imdsCredsPath || path == strings.TrimSuffix(imdsCredsPath, "/"):
		return APIIMDSRole
	case strings.HasPrefix(path, imdsCredsPath):
		return APIIMDSCredentials
	case path == "/latest/meta-data/placement/region":
		return APIIMDSRegion
	case path == "/latest/dynamic/instance-identity/document":
		return APIIMDSIdentity
	default:
		return APIIMDSOther
	}
}

func (s *Server) imdsToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	token := "AQAEA" + randomString(40)
	s.mu.Lock()
	s.imdsTokens[token] = time.Now().Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(token))
}

func (s *Server) imdsTokenValid(token string) bool {
	if token == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.imdsTokens[token]
	return ok && time.Now().Before(exp)
}
