package config

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"pb":  1000 * 1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"pib": 1 << 50,
}

// ParseSize parses a byte size: a non-negative number with an optional
// unit, case-insensitive, with or without a space: "1073741824", "500MB"
// (decimal: 500*1000^2), "50GiB" (binary: 50*1024^3), "1.5 TiB". The
// one-letter forms "50G" or "50k" are refused because tools disagree on
// whether they are decimal or binary. A fractional byte count is rounded
// down.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") || strings.Count(num, ".") > 1 {
		return 0, fmt.Errorf("invalid size %q: write a number with an optional unit, e.g. 50GiB, 500MB or 1073741824", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		if len(unit) == 1 && strings.Contains("kmgtp", unit) {
			return 0, fmt.Errorf("invalid size %q: %q is ambiguous; write %s%siB (binary) or %s%sB (decimal)",
				s, unit, num, strings.ToUpper(unit), num, strings.ToUpper(unit))
		}
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB or PiB)", s, t[i:])
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return 0, fmt.Errorf("invalid size %q: %w", s, errSizeTooLarge)
	}
	return n.Int64(), nil
}

var errSizeTooLarge = errors.New("too large")
