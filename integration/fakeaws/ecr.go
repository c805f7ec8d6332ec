package fakeaws

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

type ecrAuthorizationData struct {
	AuthorizationToken string  `json:"authorizationToken"`
	ExpiresAt          float64 `json:"expiresAt"` // epoch seconds, as awsJson timestamps
	ProxyEndpoint      string  `json:"proxyEndpoint,omitempty"`
}

// mint records and returns a new registry token for c.
func (s *Server) mint(c *credential, region string, public bool) (password string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires = time.Now().Add(s.tokenLifetime).Truncate(time.Millisecond)
	for {
		password = "fakeaws." + randomString(48)
		if _, dup := s.tokens[password]; !dup {
			break
		}
	}
	s.tokens[password] = Minted{ARN: c.arn, Account: c.account(), Region: region, Public: public, ExpiresAt: expires}
	return password, expires
}

func epochSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// dnsSuffix returns the DNS suffix of a region's partition.
func dnsSuffix(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "amazonaws.com.cn"
	case strings.HasPrefix(region, "us-isob-"):
		return "sc2s.sgov.gov"
	case strings.HasPrefix(region, "us-isof-"):
		return "csp.hci.ic.gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "c2s.ic.gov"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "cloud.adc-e.uk"
	case strings.HasPrefix(region, "eusc-"):
		return "amazonaws.eu"
	default:
		return "amazonaws.com"
	}
}

func (s *Server) ecrGetAuthorizationToken(c *credential, req *apiRequest) (any, *apiError) {
	var in struct {
		RegistryIDs []string `json:"registryIds"`
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return nil, &apiError{400, "SerializationException", "Cannot decode request"}
		}
	}
	ids := in.RegistryIDs
	if len(ids) == 0 {
		ids = []string{c.account()}
	}
	var out struct {
		AuthorizationData []ecrAuthorizationData `json:"authorizationData"`
	}
	for _, id := range ids {
		if !isAccount(id) {
			return nil, &apiError{400, "InvalidParameterException",
				"Invalid parameter at 'registryIds' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{12}''"}
		}
		password, expires := s.mint(c, req.region, false)
		out.AuthorizationData = append(out.AuthorizationData, ecrAuthorizationData{
			AuthorizationToken: base64.StdEncoding.EncodeToString([]byte("AWS:" + password)),
			ExpiresAt:          epochSeconds(expires),
			ProxyEndpoint:      "https://" + id + ".dkr.ecr." + req.region + "." + dnsSuffix(req.region),
		})
	}
	return out, nil
}

func (s *Server) ecrPublicGetAuthorizationToken(c *credential, req *apiRequest) (any, *apiError) {
	password, expires := s.mint(c, req.region, true)
	var out struct {
		AuthorizationData ecrAuthorizationData `json:"authorizationData"`
	}
	out.AuthorizationData = ecrAuthorizationData{
		AuthorizationToken: base64.StdEncoding.EncodeToString([]byte("AWS:" + password)),
		ExpiresAt:          epochSeconds(expires),
	}
	return out, nil
}

// RegistryAuth wraps an OCI registry handler so that it authenticates as a
// private ECR registry in region does: every request needs Basic
// credentials AWS:<token> with a live token this server minted by ECR (not
// ECR Public) for that region; anything else gets ECR's 401 and Basic
// challenge. Use it to build an ECR-like upstream for proxy tests.
func (s *Server) RegistryAuth(region string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if ok {
			m, known := s.TokenInfo(pass)
			ok = known && user == "AWS" && !m.Public && m.Region == region && time.Now().Before(m.ExpiresAt)
		}
		s.mu.Lock()
		if ok {
			s.calls["registry.authorized"]++
		} else {
			s.calls["registry.unauthorized"]++
		}
		s.mu.Unlock()
		if !ok {
			w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
			w.Header().Set("Www-Authenticate", `Basic realm="https://`+r.Host+`/",service="ecr.amazonaws.com"`)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("Not Authorized\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
