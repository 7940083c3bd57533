package report

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

// wrapWriter breaks every line longer than width columns at spaces, for a
// terminal: continuation lines are indented four columns deeper than the
// line's own indentation. Escape sequences (the report's colours) take no
// column and are never split; a word longer than the width is left whole
// (an address or a symbol is worth more intact). Writes are buffered up to
// each newline.
type wrapWriter struct {
	w     io.Writer
	width int
	buf   []byte
}

func (ww *wrapWriter) Write(p []byte) (int, error) {
	ww.buf = append(ww.buf, p...)
	for {
		i := bytes.IndexByte(ww.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(ww.buf[:i])
		ww.buf = ww.buf[i+1:]
		if _, err := io.WriteString(ww.w, wrapLine(line, ww.width)+"\n"); err != nil {
			return len(p), err
		}
	}
}

// Flush writes a last, unterminated line.
func (ww *wrapWriter) Flush() error {
	if len(ww.buf) == 0 {
		return nil
	}
	line := string(ww.buf)
	ww.buf = ww.buf[:0]
	_, err := io.WriteString(ww.w, wrapLine(line, ww.width))
	return err
}

// token is a run of a line: a word (with the escape sequences inside or
// around it) or the spaces between words.
type token struct {
	text  string
	width int
	space bool
}

// wrapLine wraps one line (no newline in it) to width columns.
func wrapLine(line string, width int) string {
	if width <= 0 || visibleWidth(line) <= width {
		return line
	}
	toks := tokenize(line)
	indent := 0
	if len(toks) > 0 && toks[0].space {
		indent = toks[0].width
	}
	cont := strings.Repeat(" ", min(indent+4, width/2))
	var b strings.Builder
	col, words := 0, 0 // columns and words on the current line
	pending := ""      // the spaces before the next word, written only if it fits
	pendingW := 0
	for i, t := range toks {
		if t.space {
			if i == 0 {
				b.WriteString(t.text)
				col += t.width
				continue
			}
			pending, pendingW = t.text, t.width
			continue
		}
		if words > 0 && col+pendingW+t.width > width {
			// Escape sequences inside the spaces (a colour reset) are kept.
			b.WriteString(escapesOnly(pending))
			b.WriteString("\n" + cont)
			col, words = len(cont), 0
		} else {
			b.WriteString(pending)
			col += pendingW
		}
		pending, pendingW = "", 0
		b.WriteString(t.text)
		col += t.width
		words++
	}
	b.WriteString(pending)
	return b.String()
}

// tokenize splits a line into words and runs of spaces; an escape sequence
// belongs to the token it is in and counts no width.
func tokenize(s string) []token {
	var toks []token
	var cur strings.Builder
	curW, curSpace, started := 0, false, false
	flush := func() {
		if started {
			toks = append(toks, token{cur.String(), curW, curSpace})
		}
		cur.Reset()
		curW, started = 0, false
	}
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			cur.WriteString(s[i : i+n])
			i += n
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		sp := r == ' '
		if started && sp != curSpace {
			flush()
		}
		if !started {
			started, curSpace = true, sp
		}
		cur.WriteString(s[i : i+n])
		curW++
		i += n
	}
	flush()
	return toks
}

// escapeLen is the length of the ANSI escape sequence s starts with
// (CSI: ESC [ parameters final-byte; or a two-byte ESC sequence), or 0.
func escapeLen(s string) int {
	if len(s) < 2 || s[0] != 0x1b {
		return 0
	}
	if s[1] != '[' {
		return 2
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; c >= 0x40 && c <= 0x7e {
			return i + 1
		}
	}
	return len(s)
}

func escapesOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		i++
	}
	return b.String()
}

// visibleWidth counts the columns a string takes: its runes, escape
// sequences excluded.
func visibleWidth(s string) int {
	w := 0
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			i += n
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		w++
		i += n
	}
	return w
}
