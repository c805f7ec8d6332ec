package fakeaws

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// credential is one access key the server accepts.
type credential struct {
	accessKeyID  string
	secret       string
	sessionToken string    // "" for long-term IAM user keys
	expires      time.Time // zero for long-term keys
	issued       time.Time
	arn          string // caller ARN: IAM user, or sts assumed-role
	userID       string // GetCallerIdentity UserId
}

func (c *credential) account() string { return arnAccount(c.arn) }

// instanceRole is the role IMDS hands out credentials for.
type instanceRole struct {
	name    string
	roleARN string
	current *credential
}

// AddUser makes the server accept long-term IAM user credentials, calling
// them arn (e.g. arn:aws:iam::123456789012:user/ci).
func (s *Server) AddUser(accessKeyID, secretKey, arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[accessKeyID] = &credential{
		accessKeyID: accessKeyID,
		secret:      secretKey,
		arn:         arn,
		userID:      "AIDA" + stableID(arn),
		issued:      time.Now(),
	}
}

// SetInstanceRole makes IMDS hand out temporary credentials for the role
// name, whose ARN is roleARN (arn:aws:iam::<account>:role/<name>). The caller
// ARN those credentials resolve to is
// arn:<partition>:sts::<account>:assumed-role/<name>/<instance id>, as on EC2.
func (s *Server) SetInstanceRole(name, roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.role = &instanceRole{name: name, roleARN: roleARN}
	s.rotateLocked()
}

// RotateInstanceCredentials issues new instance role credentials now, as
// EC2 does every few hours. The previous keys stay valid until they expire.
// It returns the new access key ID.
func (s *Server) RotateInstanceCredentials() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role == nil {
		panic("fakeaws: RotateInstanceCredentials without SetInstanceRole")
	}
	return s.rotateLocked().accessKeyID
}

// InstanceAccessKeyID returns the access key ID IMDS currently hands out.
func (s *Server) InstanceAccessKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role == nil {
		return ""
	}
	return s.currentInstanceCredLocked().accessKeyID
}

// InstanceCallerARN returns the ARN GetCallerIdentity reports for the
// instance role's credentials.
func (s *Server) InstanceCallerARN() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role == nil {
		return ""
	}
	return assumedRoleARN(s.role.roleARN, s.opts.InstanceID)
}

func (s *Server) currentInstanceCredLocked() *credential {
	if c := s.role.current; c != nil && time.Now().Before(c.expires) {
		return c
	}
	return s.rotateLocked()
}

func (s *Server) rotateLocked() *credential {
	c := s.newTempCredLocked(s.role.roleARN, s.opts.InstanceID, s.opts.InstanceCredentialLifetime)
	s.role.current = c
	return c
}

// newTempCredLocked issues temporary credentials for a session of roleARN.
func (s *Server) newTempCredLocked(roleARN, session string, lifetime time.Duration) *credential {
	now := time.Now()
	c := &credential{
		accessKeyID:  "ASIA" + randomKeyID(),
		secret:       randomString(30),
		sessionToken: "FwoGZXIvYXdzE" + randomString(120),
		issued:       now,
		expires:      now.Add(lifetime),
		arn:          assumedRoleARN(roleARN, session),
		userID:       "AROA" + stableID(roleARN) + ":" + session,
	}
	s.creds[c.accessKeyID] = c
	return c
}

// arnAccount returns the account field of an ARN, "" if it has none.
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// arnPartition returns the partition field of an ARN, default "aws".
func arnPartition(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[1] == "" {
		return "aws"
	}
	return parts[1]
}

// parseRoleARN checks arn:<partition>:iam::<12 digits>:role/<path/>name and
// returns the role name.
func parseRoleARN(arn string) (name string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" ||
		!isAccount(parts[4]) || !strings.HasPrefix(parts[5], "role/") {
		return "", fmt.Errorf("%q is not a role ARN", arn)
	}
	res := strings.TrimPrefix(parts[5], "role/")
	name = res[strings.LastIndex(res, "/")+1:]
	if name == "" {
		return "", fmt.Errorf("%q names no role", arn)
	}
	return name, nil
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// assumedRoleARN is the caller ARN of a session of a role.
func assumedRoleARN(roleARN, session string) string {
	name, err := parseRoleARN(roleARN)
	if err != nil {
		name = roleARN[strings.LastIndex(roleARN, "/")+1:]
	}
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", arnPartition(roleARN), arnAccount(roleARN), name, session)
}

var keyAlphabet = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomKeyID returns 16 characters of [A-Z2-7], the shape of an access key ID's tail.
func randomKeyID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return keyAlphabet.EncodeToString(b)
}

// randomString returns a random URL-safe base64 string of n bytes of entropy.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// stableID derives a 17-character upper-case ID from s (for UserId fields).
func stableID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToUpper(keyAlphabet.EncodeToString(sum[:11]))[:17]
}

// requestID returns a UUID-shaped request ID.
func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
