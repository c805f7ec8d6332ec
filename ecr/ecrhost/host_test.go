package ecrhost

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	const acct = "123456789012"
	tests := []struct {
		in   string
		want Registry
	}{
		{acct + ".dkr.ecr.us-east-1.amazonaws.com",
			Registry{Host: acct + ".dkr.ecr.us-east-1.amazonaws.com", Account: acct, Region: "us-east-1", Partition: "aws"}},
		{"https://" + acct + ".dkr.ecr.eu-west-2.amazonaws.com/v2/app/manifests/1",
			Registry{Host: acct + ".dkr.ecr.eu-west-2.amazonaws.com", Account: acct, Region: "eu-west-2", Partition: "aws"}},
		{"  " + strings.ToUpper(acct+".DKR.ECR.AP-SOUTHEAST-7.AMAZONAWS.COM.") + ":443 ",
			Registry{Host: acct + ".dkr.ecr.ap-southeast-7.amazonaws.com", Account: acct, Region: "ap-southeast-7", Partition: "aws"}},
		{acct + ".dkr.ecr.il-central-1.amazonaws.com/ns/app",
			Registry{Host: acct + ".dkr.ecr.il-central-1.amazonaws.com", Account: acct, Region: "il-central-1", Partition: "aws"}},
		{acct + ".dkr.ecr-fips.us-east-2.amazonaws.com",
			Registry{Host: acct + ".dkr.ecr-fips.us-east-2.amazonaws.com", Account: acct, Region: "us-east-2", Partition: "aws", FIPS: true}},
		{acct + ".dkr-ecr.us-west-2.on.aws",
			Registry{Host: acct + ".dkr-ecr.us-west-2.on.aws", Account: acct, Region: "us-west-2", Partition: "aws", DualStack: true}},
		{acct + ".dkr-ecr-fips.us-west-2.on.aws",
			Registry{Host: acct + ".dkr-ecr-fips.us-west-2.on.aws", Account: acct, Region: "us-west-2", Partition: "aws", DualStack: true, FIPS: true}},
		{acct + ".dkr.ecr.cn-north-1.amazonaws.com.cn",
			Registry{Host: acct + ".dkr.ecr.cn-north-1.amazonaws.com.cn", Account: acct, Region: "cn-north-1", Partition: "aws-cn"}},
		{acct + ".dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
			Registry{Host: acct + ".dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn", Account: acct, Region: "cn-northwest-1", Partition: "aws-cn", DualStack: true}},
		{acct + ".dkr.ecr.us-gov-west-1.amazonaws.com",
			Registry{Host: acct + ".dkr.ecr.us-gov-west-1.amazonaws.com", Account: acct, Region: "us-gov-west-1", Partition: "aws-us-gov"}},
		{acct + ".dkr.ecr-fips.us-gov-east-1.amazonaws.com",
			Registry{Host: acct + ".dkr.ecr-fips.us-gov-east-1.amazonaws.com", Account: acct, Region: "us-gov-east-1", Partition: "aws-us-gov", FIPS: true}},
		{acct + ".dkr-ecr.us-gov-west-1.on.aws",
			Registry{Host: acct + ".dkr-ecr.us-gov-west-1.on.aws", Account: acct, Region: "us-gov-west-1", Partition: "aws-us-gov", DualStack: true}},
		{acct + ".dkr.ecr.eusc-de-east-1.amazonaws.eu",
			Registry{Host: acct + ".dkr.ecr.eusc-de-east-1.amazonaws.eu", Account: acct, Region: "eusc-de-east-1", Partition: "aws-eusc"}},
		{acct + ".dkr.ecr.us-iso-east-1.c2s.ic.gov",
			Registry{Host: acct + ".dkr.ecr.us-iso-east-1.c2s.ic.gov", Account: acct, Region: "us-iso-east-1", Partition: "aws-iso"}},
		{acct + ".dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
			Registry{Host: acct + ".dkr.ecr.us-isob-east-1.sc2s.sgov.gov", Account: acct, Region: "us-isob-east-1", Partition: "aws-iso-b"}},
		{acct + ".dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
			Registry{Host: acct + ".dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", Account: acct, Region: "eu-isoe-west-1", Partition: "aws-iso-e"}},
		{acct + ".dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
			Registry{Host: acct + ".dkr.ecr.us-isof-south-1.csp.hci.ic.gov", Account: acct, Region: "us-isof-south-1", Partition: "aws-iso-f"}},
		{"public.ecr.aws",
			Registry{Host: "public.ecr.aws", Region: "us-east-1", Partition: "aws", Public: true}},
		{"https://Public.ECR.aws/v2/docker/library/alpine/manifests/3",
			Registry{Host: "public.ecr.aws", Region: "us-east-1", Partition: "aws", Public: true}},
		{"ecr-public.aws.com.",
			Registry{Host: "ecr-public.aws.com", Region: "us-east-1", Partition: "aws", Public: true}},
		{"http://" + acct + ".dkr.ecr.ca-central-1.amazonaws.com:5000",
			Registry{Host: acct + ".dkr.ecr.ca-central-1.amazonaws.com", Account: acct, Region: "ca-central-1", Partition: "aws"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q)\n got  %+v\n want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	const acct = "123456789012"
	for _, in := range []string{
		"",
		"docker.io",
		"ghcr.io",
		"public.ecr.aws.evil.example",
		"evil-public.ecr.aws",
		"x.public.ecr.aws",
		acct + ".dkr.ecr.us-east-1.amazonaws.com.evil.example",
		acct + ".dkr.ecr.us-east-1.amazonaws.com.cn.evil.example",
		"evil." + acct + ".dkr.ecr.us-east-1.amazonaws.com",
		acct + ".x.dkr.ecr.us-east-1.amazonaws.com",
		acct + ".dkr.ecr.us-east-1.x.amazonaws.com",
		acct + ".dkr.ecr.us-east-1.evilamazonaws.com",
		acct + ".dkr.ecr.us-east-1",
		acct + ".dkr.ecr.amazonaws.com",
		"12345678901.dkr.ecr.us-east-1.amazonaws.com",   // 11 digits
		"1234567890123.dkr.ecr.us-east-1.amazonaws.com", // 13 digits
		"12345678901a.dkr.ecr.us-east-1.amazonaws.com",
		"-12345678901.dkr.ecr.us-east-1.amazonaws.com",
		acct + ".dkr.ecr.cn-north-1.amazonaws.com",         // China region, commercial suffix
		acct + ".dkr.ecr.us-east-1.amazonaws.com.cn",       // commercial region, China suffix
		acct + ".dkr.ecr.us-gov-west-1.c2s.ic.gov",         // GovCloud region, ISO suffix
		acct + ".dkr.ecr.us-iso-east-1.amazonaws.com",      // ISO region, commercial suffix
		acct + ".dkr.ecr.eu-isoe-west-1.amazonaws.eu",      // ISO-E region, EUSC suffix
		acct + ".dkr.ecr.xx-east-1.amazonaws.com",          // unknown region prefix
		acct + ".dkr.ecr.us-east-01.amazonaws.com",         // leading zero
		acct + ".dkr.ecr.us-east-100.amazonaws.com",        // too many digits
		acct + ".dkr.ecr.us-east.amazonaws.com",            // no number
		acct + ".dkr.ecr.us--1.amazonaws.com",              // no direction
		acct + ".dkr.ecr.us-ea5t-1.amazonaws.com",          // digit in direction
		acct + ".dkr.ecr-fips.cn-north-1.amazonaws.com.cn", // no FIPS in China
		acct + ".dkr.ecr.us-west-2.on.aws",                 // dual-stack suffix without dkr-ecr
		acct + ".dkr-ecr.us-west-2.amazonaws.com",          // dkr-ecr with the IPv4 suffix
		acct + ".dkr-ecr.us-iso-east-1.c2s.ic.gov",         // no dual-stack in ISO
		acct + ".dkr.ecr.us-east-1.amazonaws.com:0",
		acct + ".dkr.ecr.us-east-1.amazonaws.com:65536",
		acct + ".dkr.ecr.us-east-1.amazonaws.com:https",
		acct + ".dkr.ecr.us-east-1.amazonaws.com..",
		"user@" + acct + ".dkr.ecr.us-east-1.amazonaws.com",
		"https://user:pw@" + acct + ".dkr.ecr.us-east-1.amazonaws.com",
		"ftp://" + acct + ".dkr.ecr.us-east-1.amazonaws.com",
		"[::1]:443",
		acct + ".dkr.ecr.us-east-1.amazonaws.com\x00",
	} {
		if got, err := Parse(in); !errors.Is(err, ErrNotECR) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrNotECR", in, got, err)
		}
	}
}

// knownSuffixes are the DNS suffixes every accepted host must end with.
var knownSuffixes = []string{
	".amazonaws.com", ".amazonaws.com.cn", ".on.aws", ".on.amazonwebservices.com.cn",
	".amazonaws.eu", ".c2s.ic.gov", ".sc2s.sgov.gov", ".cloud.adc-e.uk", ".csp.hci.ic.gov",
}

// render builds the host from a Registry's parts, independently of Parse.
func render(r Registry) string {
	if r.Public {
		return r.Host
	}
	svc := "dkr.ecr"
	if r.DualStack {
		svc = "dkr-ecr"
	}
	if r.FIPS {
		svc += "-fips"
	}
	suffix := map[string]string{
		"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn",
		"aws-iso": "c2s.ic.gov", "aws-iso-b": "sc2s.sgov.gov", "aws-iso-e": "cloud.adc-e.uk",
		"aws-iso-f": "csp.hci.ic.gov", "aws-eusc": "amazonaws.eu",
	}[r.Partition]
	if r.DualStack {
		suffix = map[string]string{"aws": "on.aws", "aws-us-gov": "on.aws", "aws-cn": "on.amazonwebservices.com.cn"}[r.Partition]
	}
	return r.Account + "." + svc + "." + r.Region + "." + suffix
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com",
		"https://123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/v2/",
		"123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn:443",
		"123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov.",
		"public.ecr.aws",
		"ECR-PUBLIC.aws.com",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
		"123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotECR) {
				t.Fatalf("Parse(%q): unexpected error %v", s, err)
			}
			return
		}
		if r.Host != strings.ToLower(r.Host) || strings.HasSuffix(r.Host, ".") || strings.Contains(r.Host, ":") {
			t.Fatalf("Parse(%q): host %q is not canonical", s, r.Host)
		}
		if r.Public {
			if r.Host != "public.ecr.aws" && r.Host != "ecr-public.aws.com" || r.Region != "us-east-1" || r.Account != "" {
				t.Fatalf("Parse(%q): bad public registry %+v", s, r)
			}
		} else {
			if got := render(r); got != r.Host {
				t.Fatalf("Parse(%q): parts %+v render as %q, not %q", s, r, got, r.Host)
			}
			ok := false
			for _, suf := range knownSuffixes {
				ok = ok || strings.HasSuffix(r.Host, suf)
			}
			if !ok {
				t.Fatalf("Parse(%q): %q has no known partition suffix", s, r.Host)
			}
			if !isAccountID(r.Account) {
				t.Fatalf("Parse(%q): bad account %q", s, r.Account)
			}
		}
		// Re-parsing the canonical host, alone or as a URL, gives the same registry.
		for _, again := range []string{r.Host, "https://" + r.Host + "/v2/", strings.ToUpper(r.Host) + ".:443"} {
			r2, err := Parse(again)
			if err != nil || r2 != r {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v (from %q)", again, r2, err, r, s)
			}
		}
	})
}
