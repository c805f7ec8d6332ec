// Package allowlist decides which image references may be pulled.
package allowlist
