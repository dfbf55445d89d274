package proxy

import (
	"bytes"
	"math"
	"strconv"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
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

// parseValue parses one complete value from b and returns it and its length. internal/resp's
// Scanner finds the values (every one is watched); the parser only builds them.
func parseValue(b []byte, depth int) (value, int, error) {
	var s resp.Scanner
	s.Lim, s.Watch = resp.NoLimits(maxDepth-depth), math.MaxInt
	type open struct {
		v     value
		start int    // offset of its type byte
		attr  *value // an attribute for its next element
	}
	var stack []open
	var topAttr *value
	for i := 0; ; {
		n, ev, err := s.Scan(b[i:])
		i += n
		if err != nil || ev == resp.None {
			return value{}, 0, errProtocol
		}
		switch ev {
		case resp.Begin:
			stack = append(stack, open{v: value{t: s.Type()}, start: i - 1})
			continue
		case resp.Done, resp.End:
		default:
			continue
		}
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		v := o.v
		fill(&v, b[o.start:i], s.Null())
		pending := &topAttr
		if len(stack) > 0 {
			pending = &stack[len(stack)-1].attr
		}
		if v.t == '|' {
			*pending = &v // it annotates the next value at this depth
			continue
		}
		v.attr, *pending = *pending, nil
		if ev == resp.End {
			return v, i, nil
		}
		stack[len(stack)-1].v.a = append(stack[len(stack)-1].v.a, v)
	}
}

// fill sets a complete value's text (frame is all of its bytes) or null; an aggregate's
// elements are already in place.
func fill(v *value, frame []byte, null bool) {
	switch v.t {
	case '+', '-', ',', '(', '#', ':', '_':
		v.s = frame[1 : len(frame)-2]
	case '$', '=', '!':
		if v.null = null; !null {
			v.s = frame[bytes.IndexByte(frame, '\n')+1 : len(frame)-2]
		}
	default:
		v.null = null
	}
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
