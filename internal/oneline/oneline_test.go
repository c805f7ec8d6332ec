package oneline

import (
	"strings"
	"testing"
)

func TestCut(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines", `two\nlines`},
		{"bad \xff byte", `bad \xff byte`},
		{strings.Repeat("a", 301), strings.Repeat("a", 300) + "..."},
	} {
		if got := Cut(tc.in); got != tc.want {
			t.Errorf("Cut(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got, want := Quote("a\"b"), `"a\"b"`; got != want {
		t.Errorf("Quote = %s, want %s", got, want)
	}
	long := Quote(strings.Repeat("x", 250))
	if !strings.HasSuffix(long, `"...`) || len(long) != 200+2+3 {
		t.Errorf("Quote of 250 bytes = %d bytes %q, want the first 200 quoted and ...", len(long), long)
	}
}
