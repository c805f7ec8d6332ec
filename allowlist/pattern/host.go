package pattern

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spacelift-io/tollgate/internal/oneline"
)

// Limits from RFC 1035: a host name is at most 253 characters written
// without the trailing dot, each label at most 63.
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// ErrInvalidHost is wrapped by every error of ParseHost and CanonicalHost.
var ErrInvalidHost = errors.New("invalid registry host")

// dockerHubAliases are the names of the Docker Hub registry; all are
// canonicalised to "docker.io".
var dockerHubAliases = map[string]bool{
	"docker.io":               true,
	"index.docker.io":         true,
	"registry-1.docker.io":    true,
	"registry.hub.docker.com": true,
}

// DockerHub is the canonical name of the Docker Hub registry.
const DockerHub = "docker.io"

// Host is a canonical registry host, split for matching.
type Host struct {
	// Name is the host name or IP literal: lower case, no trailing dot;
	// IPv6 literals keep their brackets ("[::1]").
	Name string
	// Port is "" for the default port (443) or a decimal port without
	// leading zeros.
	Port string
	// IP is true when Name is an IP literal.
	IP bool

	labels []string
}

// String is the canonical form: Name, or Name:Port.
func (h Host) String() string {
	if h.Port == "" {
		return h.Name
	}
	return h.Name + ":" + h.Port
}

// CanonicalHost returns the canonical form of a registry host: lower case, no
// trailing dot, the default port :443 removed, leading zeros of a port
// removed, IP literals in their canonical form, and Docker Hub's aliases
// (index.docker.io, registry-1.docker.io, registry.hub.docker.com) folded to
// "docker.io". Anything that is not a valid host[:port] is an error wrapping
// ErrInvalidHost.
func CanonicalHost(host string) (string, error) {
	h, err := ParseHost(host)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// ParseHost canonicalises host (see CanonicalHost) and splits it for
// matching.
func ParseHost(host string) (Host, error) {
	h, err := parseHost(host)
	if err != nil {
		return Host{}, fmt.Errorf("%w %s: %s", ErrInvalidHost, oneline.Quote(host), err.Error())
	}
	return h, nil
}

func parseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, errors.New("empty host")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return Host{}, errors.New("non-ASCII characters; write an internationalised name in its punycode (xn--) form")
		}
		if c <= ' ' || c == 0x7f {
			return Host{}, errors.New("contains a space or control character")
		}
	}
	if strings.ContainsAny(s, "/@?#") {
		return Host{}, errors.New("a host may not contain '/', '@', '?' or '#' (no scheme, user-info or path)")
	}
	name, port, err := splitPort(s)
	if err != nil {
		return Host{}, err
	}
	h := Host{Port: port}
	if strings.HasPrefix(name, "[") {
		addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
		if err != nil || !strings.HasSuffix(name, "]") || !addr.Is6() || addr.Zone() != "" {
			return Host{}, errors.New("not a valid IPv6 literal (write it as [2001:db8::1], without a zone)")
		}
		if addr.Is4In6() {
			return Host{}, errors.New("IPv4-mapped IPv6 literal; write the IPv4 address instead")
		}
		h.Name, h.IP = "["+addr.String()+"]", true
		return h, nil
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" {
		return Host{}, errors.New("empty host name")
	}
	if len(name) > maxHostLen {
		return Host{}, fmt.Errorf("host name longer than %d characters", maxHostLen)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return Host{}, err
		}
	}
	if isNumeric(labels[len(labels)-1]) {
		// A name whose last label is numeric is an IPv4 address or
		// nothing: resolvers read "127.1" or "0x7f.1" as addresses, so
		// only the plain dotted-quad form is accepted.
		addr, err := netip.ParseAddr(name)
		if err != nil || !addr.Is4() {
			return Host{}, errors.New("a name ending in a numeric label must be a dotted-quad IPv4 address")
		}
		h.Name, h.IP = addr.String(), true
		return h, nil
	}
	if port == "" && dockerHubAliases[name] {
		name = DockerHub
		labels = []string{"docker", "io"}
	}
	h.Name, h.labels = name, labels
	return h, nil
}

// splitPort separates an optional :port and canonicalises it. A bracketed
// IPv6 literal is returned with its brackets.
func splitPort(s string) (name, port string, err error) {
	var rest string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("unterminated IPv6 literal")
		}
		name, rest = s[:end+1], s[end+1:]
		if rest == "" {
			return name, "", nil
		}
		if rest[0] != ':' {
			return "", "", errors.New("unexpected characters after IPv6 literal")
		}
		rest = rest[1:]
	} else {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return s, "", nil
		}
		name, rest = s[:i], s[i+1:]
		if strings.IndexByte(rest, ':') >= 0 {
			return "", "", errors.New("more than one ':' (write IPv6 literals in brackets: [::1]:5000)")
		}
	}
	port, err = canonicalPort(rest)
	return name, port, err
}

func canonicalPort(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty port after ':'")
	}
	if !isNumeric(p) || len(p) > 5 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	n, _ := strconv.Atoi(p)
	if n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	if n == 443 {
		return "", nil
	}
	return strconv.Itoa(n), nil
}

// checkLabel accepts a DNS label as the reference grammar does (letters,
// digits, inner hyphens), lower case, at most 63 characters.
func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label (two dots in a row, or a leading dot)")
	}
	if len(l) > maxLabelLen {
		return fmt.Errorf("label longer than %d characters", maxLabelLen)
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		if !isLabelByte(l[i]) {
			return fmt.Errorf("label %q contains %q; only letters, digits and '-' are allowed", l, l[i])
		}
	}
	return nil
}

func isLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
