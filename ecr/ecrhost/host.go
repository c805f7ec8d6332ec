package ecrhost

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Registry is an ECR registry host, taken apart.
type Registry struct {
	// Host is the canonical host: lower case, no port, no trailing dot.
	Host string
	// Account is the 12-digit AWS account id; empty for ECR Public.
	Account string
	// Region is the AWS region of the registry's API (us-east-1 for ECR
	// Public).
	Region string
	// Partition is the AWS partition: aws, aws-cn, aws-us-gov, aws-iso,
	// aws-iso-b, aws-iso-e, aws-iso-f or aws-eusc.
	Partition string
	// FIPS is set for dkr.ecr-fips / dkr-ecr-fips hosts.
	FIPS bool
	// DualStack is set for the IPv4+IPv6 hosts (dkr-ecr.<region>.on.aws and
	// the China equivalent).
	DualStack bool
	// Public is set for ECR Public (public.ecr.aws, ecr-public.aws.com).
	Public bool
}

// ErrNotECR is returned by Parse for anything that is not an ECR registry
// host. Callers treat it as "this host is not ours", not as a failure.
var ErrNotECR = errors.New("not an Amazon ECR registry host")

// Hosts of ECR Public. Its API lives in us-east-1 of the aws partition.
const (
	publicHost      = "public.ecr.aws"
	publicAliasHost = "ecr-public.aws.com"
	publicRegion    = "us-east-1"
)

// partition describes the registry host names of one AWS partition.
type partition struct {
	id string
	// suffix is the DNS suffix of <account>.dkr.ecr.<region>.<suffix>.
	suffix string
	// dualStackSuffix is the suffix of <account>.dkr-ecr.<region>.<suffix>,
	// empty where the partition has no dual-stack registry endpoints.
	dualStackSuffix string
	// regionPrefixes are what the partition's region names start with, before
	// "-<direction>-<number>" (e.g. "us-gov" for us-gov-west-1).
	regionPrefixes []string
	// fips is whether the partition has FIPS registry endpoints.
	fips bool
}

// partitions lists every AWS partition that runs ECR. Region prefixes follow
// the region patterns of the AWS SDKs' partition metadata.
var partitions = []partition{
	{id: "aws", suffix: "amazonaws.com", dualStackSuffix: "on.aws",
		regionPrefixes: []string{"us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"}, fips: true},
	{id: "aws-us-gov", suffix: "amazonaws.com", dualStackSuffix: "on.aws",
		regionPrefixes: []string{"us-gov"}, fips: true},
	{id: "aws-cn", suffix: "amazonaws.com.cn", dualStackSuffix: "on.amazonwebservices.com.cn",
		regionPrefixes: []string{"cn"}},
	{id: "aws-iso", suffix: "c2s.ic.gov", regionPrefixes: []string{"us-iso"}, fips: true},
	{id: "aws-iso-b", suffix: "sc2s.sgov.gov", regionPrefixes: []string{"us-isob"}, fips: true},
	{id: "aws-iso-e", suffix: "cloud.adc-e.uk", regionPrefixes: []string{"eu-isoe"}, fips: true},
	{id: "aws-iso-f", suffix: "csp.hci.ic.gov", regionPrefixes: []string{"us-isof"}, fips: true},
	{id: "aws-eusc", suffix: "amazonaws.eu", regionPrefixes: []string{"eusc-de"}, fips: true},
}

// Parse recognises an ECR registry host. s may be a bare host, host:port
// or a URL with scheme and path (as docker passes server URLs); matching is
// case-insensitive and ignores a trailing dot. Anything else, including
// look-alikes such as 123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example,
// hosts with extra labels, malformed account ids and regions that do not
// belong to the host's partition, yields ErrNotECR.
func Parse(s string) (Registry, error) {
	host, ok := hostOf(s)
	if !ok {
		return Registry{}, ErrNotECR
	}
	if host == publicHost || host == publicAliasHost {
		return Registry{Host: host, Region: publicRegion, Partition: "aws", Public: true}, nil
	}
	labels := strings.Split(host, ".")
	if len(labels) < 5 || !isAccountID(labels[0]) {
		return Registry{}, ErrNotECR
	}
	r := Registry{Account: labels[0]}
	var regionAt int
	switch {
	case labels[1] == "dkr" && (labels[2] == "ecr" || labels[2] == "ecr-fips"):
		r.FIPS = labels[2] == "ecr-fips"
		regionAt = 3
	case labels[1] == "dkr-ecr" || labels[1] == "dkr-ecr-fips":
		r.FIPS = labels[1] == "dkr-ecr-fips"
		r.DualStack = true
		regionAt = 2
	default:
		return Registry{}, ErrNotECR
	}
	if len(labels) <= regionAt+1 {
		return Registry{}, ErrNotECR
	}
	r.Region = labels[regionAt]
	suffix := strings.Join(labels[regionAt+1:], ".")
	for _, p := range partitions {
		want := p.suffix
		if r.DualStack {
			want = p.dualStackSuffix
		}
		if want == "" || suffix != want || !p.hasRegion(r.Region) {
			continue
		}
		if r.FIPS && !p.fips {
			return Registry{}, ErrNotECR
		}
		r.Partition = p.id
		r.Host = host
		return r, nil
	}
	return Registry{}, ErrNotECR
}

// hostOf extracts the lower-case host of s, without port or trailing dot.
func hostOf(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", false
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.User != nil || u.Host == "" {
			return "", false
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return "", false
		}
		s = u.Host
	} else if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if strings.ContainsAny(s, "@[] \t") {
		return "", false
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		port := s[i+1:]
		s = s[:i]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return "", false
		}
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" || strings.Contains(s, ":") {
		return "", false
	}
	return s, true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// hasRegion reports whether region has the shape of one of the partition's
// regions: <prefix>-<direction>-<number>, e.g. us-gov-west-1, ap-southeast-7.
func (p partition) hasRegion(region string) bool {
	for _, prefix := range p.regionPrefixes {
		rest, ok := strings.CutPrefix(region, prefix+"-")
		if !ok {
			continue
		}
		word, num, ok := strings.Cut(rest, "-")
		if ok && isLower(word) && isRegionNumber(num) {
			return true
		}
	}
	return false
}

func isLower(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// isRegionNumber accepts 1 to 99 without leading zeros.
func isRegionNumber(s string) bool {
	if len(s) == 0 || len(s) > 2 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String renders the registry as its canonical host.
func (r Registry) String() string { return r.Host }
