package filter

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF     tokenKind = iota
	tokWord              // bare identifier or keyword: letters, digits, _ $ and dots
	tokString            // '...' or "..."
	tokBackq             // `...`
	tokNumber            // 1, -2.5, 1e-3, .5
	tokOp                // = != < <= > >=
	tokLParen            // (
	tokRParen            // )
	tokComma             // ,
	tokIllegal           // anything else, or an unterminated quote
)

// token is one lexeme. pos and end are byte offsets into the source; text
// is the lexeme as written, val the unquoted content of a quoted token.
type token struct {
	kind     tokenKind
	pos, end int
	text     string
	val      string
	quote    byte // for tokString: ' or "
}

func isWordStart(c byte) bool {
	return c == '_' || c == '$' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c >= utf8.RuneSelf
}

func isWordChar(c byte) bool { return isWordStart(c) || c == '.' || isDigit(c) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// lex splits src into tokens, ending with tokEOF. It never fails: what it
// cannot read becomes a tokIllegal that the parser reports with its position.
func lex(src string) []token {
	var toks []token
	i := 0
	for {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
			i++
		}
		if i >= len(src) {
			return append(toks, token{kind: tokEOF, pos: len(src), end: len(src)})
		}
		t := scan(src, i)
		toks = append(toks, t)
		i = t.end
	}
}

func scan(src string, i int) token {
	c := src[i]
	switch {
	case c == '\'' || c == '"' || c == '`':
		return scanQuoted(src, i)
	case isDigit(c), (c == '-' || c == '+' || c == '.') && i+1 < len(src) && (isDigit(src[i+1]) || src[i+1] == '.' && c != '.'):
		return scanNumber(src, i)
	case isWordStart(c):
		j := i
		for j < len(src) && isWordChar(src[j]) {
			j++
		}
		return token{kind: tokWord, pos: i, end: j, text: src[i:j]}
	case c == '(':
		return token{kind: tokLParen, pos: i, end: i + 1, text: "("}
	case c == ')':
		return token{kind: tokRParen, pos: i, end: i + 1, text: ")"}
	case c == ',':
		return token{kind: tokComma, pos: i, end: i + 1, text: ","}
	case c == '=':
		// "==" is not SQL; read it as one operator so the parser names it.
		if strings.HasPrefix(src[i:], "==") {
			return token{kind: tokIllegal, pos: i, end: i + 2, text: "=="}
		}
		return token{kind: tokOp, pos: i, end: i + 1, text: "="}
	case c == '!' || c == '<' || c == '>':
		if i+1 < len(src) && src[i+1] == '=' {
			return token{kind: tokOp, pos: i, end: i + 2, text: src[i : i+2]}
		}
		if c == '!' || (c == '<' && i+1 < len(src) && src[i+1] == '>') {
			j := i + 1
			if c == '<' {
				j++
			}
			return token{kind: tokIllegal, pos: i, end: j, text: src[i:j]}
		}
		return token{kind: tokOp, pos: i, end: i + 1, text: src[i : i+1]}
	case c == '.':
		return token{kind: tokWord, pos: i, end: i + 1, text: "."}
	}
	_, n := utf8.DecodeRuneInString(src[i:])
	return token{kind: tokIllegal, pos: i, end: i + n, text: src[i : i+n]}
}

// scanQuoted reads a quoted string or identifier. A doubled quote character
// stands for one, as in SQL; backslashes have no special meaning.
func scanQuoted(src string, i int) token {
	q := src[i]
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		if src[j] == q {
			if j+1 < len(src) && src[j+1] == q {
				b.WriteByte(q)
				j += 2
				continue
			}
			kind := tokString
			if q == '`' {
				kind = tokBackq
			}
			return token{kind: kind, pos: i, end: j + 1, text: src[i : j+1], val: b.String(), quote: q}
		}
		b.WriteByte(src[j])
		j++
	}
	return token{kind: tokIllegal, pos: i, end: len(src), text: src[i:], val: "unterminated"}
}

func scanNumber(src string, i int) token {
	j := i
	if src[j] == '-' || src[j] == '+' {
		j++
	}
	digits := 0
	for j < len(src) && isDigit(src[j]) {
		j++
		digits++
	}
	if j < len(src) && src[j] == '.' {
		j++
		for j < len(src) && isDigit(src[j]) {
			j++
			digits++
		}
	}
	if digits > 0 && j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '-' || src[k] == '+') {
			k++
		}
		if k < len(src) && isDigit(src[k]) {
			for k < len(src) && isDigit(src[k]) {
				k++
			}
			j = k
		}
	}
	// "1abc" or "1.2.3" is neither a number nor a name: report all of it.
	if digits == 0 || j < len(src) && isWordChar(src[j]) {
		for j < len(src) && isWordChar(src[j]) {
			j++
		}
		return token{kind: tokIllegal, pos: i, end: j, text: src[i:j]}
	}
	return token{kind: tokNumber, pos: i, end: j, text: src[i:j]}
}

// describe names a token for an error message.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokIllegal:
		if t.val == "unterminated" {
			return fmt.Sprintf("unterminated quote %s", quoteShort(t.text))
		}
	}
	return quoteShort(t.text)
}

// quoteShort quotes s for a message, cut so a huge filter does not flood logs.
func quoteShort(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "..."
	}
	return fmt.Sprintf("%q", s)
}
