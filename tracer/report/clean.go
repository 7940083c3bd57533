package report

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable makes a string that came from the traced program (a symbol
// name, a path, an argument, an instruction quoting a symbol) safe to print
// on a terminal or in a CI log: control characters, C1 controls,
// bidirectional overrides and invalid UTF-8 are written as Go-style escapes
// (\x1b, \x07, \u202e), so that a program cannot move the cursor, retitle
// the window, ring the bell or reorder the text of vtrace's report. Any
// other text is returned unchanged (and unallocated).
func Printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			if c >= 0x80 {
				return !utf8.ValidString(s) || strings.IndexFunc(s, unsafeRune) >= 0
			}
			return true
		}
	}
	return false
}

// unsafeRune is a rune that changes how a terminal shows what follows:
// C0 and C1 controls, DEL, and the bidirectional embedding, override and
// isolate characters ("Trojan source").
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return unicode.Is(unicode.Cc, r)
}
