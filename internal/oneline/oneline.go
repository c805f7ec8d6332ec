package oneline

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Cut returns s shortened to 300 bytes (marked with "...") and, if it holds
// anything that is not printable, escaped as in a Go string literal
// without the quotes.
func Cut(s string) string {
	const max = 300
	tail := ""
	if len(s) > max {
		s, tail = s[:max], "..."
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) >= 0 {
		q := strconv.Quote(s)
		s = q[1 : len(q)-1]
	}
	return s + tail
}

// Quote returns s as a quoted Go string literal, of at most its first 200
// bytes (then followed by "...").
func Quote(s string) string {
	const max = 200
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
