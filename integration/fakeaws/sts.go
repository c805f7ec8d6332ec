package fakeaws

import (
	"encoding/xml"
	"regexp"
	"strconv"
	"time"
)

type stsCallerIdentity struct {
	XMLName xml.Name `xml:"GetCallerIdentityResult"`
	Arn     string   `xml:"Arn"`
	UserID  string   `xml:"UserId"`
	Account string   `xml:"Account"`
}

func (s *Server) stsGetCallerIdentity(c *credential, _ *apiRequest) (any, *apiError) {
	return stsCallerIdentity{Arn: c.arn, UserID: c.userID, Account: c.account()}, nil
}

type stsAssumeRoleResult struct {
	XMLName         xml.Name `xml:"AssumeRoleResult"`
	AssumedRoleUser struct {
		Arn           string `xml:"Arn"`
		AssumedRoleID string `xml:"AssumedRoleId"`
	} `xml:"AssumedRoleUser"`
	Credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	} `xml:"Credentials"`
}

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func validationError(msg string) *apiError {
	return &apiError{400, "ValidationError", "1 validation error detected: " + msg}
}

// stsAssumeRole lets any authenticated caller assume any well-formed role
// ARN (inject Deny to refuse), and returns temporary credentials the other
// endpoints accept, resolving to the assumed-role ARN.
func (s *Server) stsAssumeRole(_ *credential, req *apiRequest) (any, *apiError) {
	roleARN := req.form.Get("RoleArn")
	session := req.form.Get("RoleSessionName")
	if roleARN == "" {
		return nil, validationError("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	}
	if session == "" {
		return nil, validationError("Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	}
	if !sessionNameRE.MatchString(session) {
		return nil, validationError("Value '" + session + "' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*")
	}
	if _, err := parseRoleARN(roleARN); err != nil {
		return nil, validationError(err.Error())
	}
	lifetime := s.opts.AssumeRoleLifetime
	if d := req.form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			return nil, validationError("Value '" + d + "' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200")
		}
		lifetime = time.Duration(n) * time.Second
	}
	s.mu.Lock()
	c := s.newTempCredLocked(roleARN, session, lifetime)
	s.mu.Unlock()

	var out stsAssumeRoleResult
	out.AssumedRoleUser.Arn = c.arn
	out.AssumedRoleUser.AssumedRoleID = c.userID
	out.Credentials.AccessKeyID = c.accessKeyID
	out.Credentials.SecretAccessKey = c.secret
	out.Credentials.SessionToken = c.sessionToken
	out.Credentials.Expiration = c.expires.UTC().Format(time.RFC3339)
	return out, nil
}
