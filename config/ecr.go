package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
)

// validateECR checks the ecr section at load time, so that every command
// (the proxy, refresh, the helper with $TOLLGATE_CONFIG) refuses the same
// mistakes with the file and line: per-registry keys must be ECR registry
// hosts, role_arn an IAM role ARN, cache_dir absolute.
func (c *Config) validateECR() []FieldError {
	var fes []FieldError
	if c.ECR.CacheDir != "" && !filepath.IsAbs(c.ECR.CacheDir) {
		fes = append(fes, fieldErr(fmt.Sprintf("cache_dir %q is a relative path, which would put tokens wherever tollgate happens to run: make it absolute", c.ECR.CacheDir), "ecr", "cache_dir"))
	}
	for host, r := range c.ECR.Registries {
		if _, err := ecrhost.Parse(host); err != nil {
			fes = append(fes, fieldErr(fmt.Sprintf("%q is not an Amazon ECR registry host (ACCOUNT.dkr.ecr.REGION.amazonaws.com or public.ecr.aws)", host), "ecr", "registries", host))
			continue
		}
		if r.RoleARN != "" && !IsRoleARN(r.RoleARN) {
			fes = append(fes, fieldErr(fmt.Sprintf("role_arn %q is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)", r.RoleARN), "ecr", "registries", host, "role_arn"))
		}
	}
	return fes
}

// IsRoleARN reports whether s has the shape of an IAM role ARN:
// arn:<partition>:iam::<12-digit account>:role/<name>.
func IsRoleARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws") &&
		parts[2] == "iam" && len(parts[4]) == 12 && strings.Trim(parts[4], "0123456789") == "" &&
		strings.HasPrefix(parts[5], "role/") && len(parts[5]) > 5
}
