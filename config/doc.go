// Package config defines tollgate's YAML configuration file, its embedded
// default, and how it is loaded (--config FILE, TOLLGATE_CONFIG, or the
// default). Each section is consumed by one package: allowlist, proxy, ecr,
// refresh.
package config
