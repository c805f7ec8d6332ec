// Package config defines tollgate's YAML configuration file, its embedded
// default (default.yaml), and how it is loaded: --config FILE, else
// $TOLLGATE_CONFIG, else the embedded default. Each section is consumed by
// one package: allowlist, proxy, ecr, refresh.
//
// Parse decodes strictly: an unknown key, a value of the wrong type or an
// invalid value is an *Error listing every problem as "file:line: message".
// Keys a file leaves out keep the embedded default (Normalize), so
// default.yaml is the single source of default values.
//
// Section owners validate their section in config/<section>.go and list the
// validator in the validators literal (validate.go); a validator returns
// FieldErrors located by key path, and Parse attaches the line of each.
package config
