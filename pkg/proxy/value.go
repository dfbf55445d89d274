package proxy

import (
	"bytes"
	"strconv"
)

// value is a parsed RESP2/RESP3 value: only topology replies (buffered, bounded) are parsed;
// everything else is forwarded as bytes.
type value struct {
	t    byte
	s    []byte  // line types: the text; bulk types: the payload
	null bool    // $-1, *-1
	a    []value // aggregates; a map or attribute holds key, value, key, value, ...
	attr *value  // an attribute annotating this value
}

// parseValue parses one complete value from b and returns it and its length.
func parseValue(b []byte, depth int) (value, int, error) {
	if depth > maxDepth || len(b) == 0 {
		return value{}, 0, errProtocol
	}
	t := b[0]
	line := bytes.Index(b, []byte("\r\n"))
	if line < 0 {
		return value{}, 0, errProtocol
	}
	body := b[1:line]
	n := line + 2
	switch t {
	case '+', '-', ',', '(', '#', ':', '_':
		return value{t: t, s: body}, n, nil
	case '$', '=', '!':
		l, err := strconv.Atoi(string(body))
		if err != nil {
			return value{}, 0, errProtocol
		}
		if l < 0 {
			return value{t: t, null: true}, n, nil
		}
		if len(b) < n+l+2 {
			return value{}, 0, errProtocol
		}
		return value{t: t, s: b[n : n+l]}, n + l + 2, nil
	case '*', '%', '~', '>', '|':
		l, err := strconv.Atoi(string(body))
		if err != nil || l > len(b) {
			return value{}, 0, errProtocol
		}
		if l < 0 {
			return value{t: t, null: true}, n, nil
		}
		if t == '%' || t == '|' {
			l *= 2
		}
		v := value{t: t, a: make([]value, 0, l)}
		for k := 0; k < l; k++ {
			e, m, err := parseValue(b[n:], depth+1)
			if err != nil {
				return value{}, 0, err
			}
			v.a = append(v.a, e)
			n += m
		}
		if t == '|' {
			inner, m, err := parseValue(b[n:], depth+1)
			if err != nil {
				return value{}, 0, err
			}
			inner.attr = &v
			return inner, n + m, nil
		}
		return v, n, nil
	}
	return value{}, 0, errProtocol
}

func (v *value) appendTo(out []byte) []byte {
	if v.attr != nil {
		out = v.attr.appendTo(out)
	}
	switch v.t {
	case '+', '-', ',', '(', '#', ':', '_':
		out = append(out, v.t)
		out = append(out, v.s...)
		return append(out, '\r', '\n')
	case '$', '=', '!':
		out = append(out, v.t)
		if v.null {
			return append(out, '-', '1', '\r', '\n')
		}
		out = strconv.AppendInt(out, int64(len(v.s)), 10)
		out = append(out, '\r', '\n')
		out = append(out, v.s...)
		return append(out, '\r', '\n')
	}
	out = append(out, v.t)
	if v.null {
		return append(out, '-', '1', '\r', '\n')
	}
	n := len(v.a)
	if v.t == '%' || v.t == '|' {
		n /= 2
	}
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, '\r', '\n')
	for i := range v.a {
		out = v.a[i].appendTo(out)
	}
	return out
}

// str returns the text of a string value (simple, bulk, verbatim without its format prefix).
func (v *value) str() (string, bool) {
	switch v.t {
	case '+', '$':
		return string(v.s), !v.null
	case '=':
		if len(v.s) >= 4 {
			return string(v.s[4:]), true
		}
	}
	return "", false
}

// integer returns the value of an integer, or of a string that holds one (what ParseInt
// returns for anything else: 0, or the bound on overflow).
func (v *value) integer() int64 {
	switch v.t {
	case ':', '$', '+':
		n, _ := strconv.ParseInt(string(v.s), 10, 64)
		return n
	}
	return 0
}

func (v *value) isAggregate() bool {
	return !v.null && (v.t == '*' || v.t == '%' || v.t == '~')
}

// setString replaces a string value's text, keeping its type (bulk for anything else).
func (v *value) setString(s string) {
	switch v.t {
	case '+':
		v.s = []byte(s)
	case '=':
		v.s = append([]byte(string(v.s[:4])), s...)
	default:
		v.t, v.s, v.null = '$', []byte(s), false
	}
}

func intValue(n int) value { return value{t: ':', s: strconv.AppendInt(nil, int64(n), 10)} }
