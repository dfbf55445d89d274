package resp

import "errors"

// ErrUnbalancedQuotes is what Redis answers "Protocol error: unbalanced quotes in request" to:
// an inline command with an unterminated quote, or a closing quote followed by something
// other than a space.
var ErrUnbalancedQuotes = errors.New("unbalanced quotes in inline request")

// ErrInlineNUL means that an inline command holds a NUL byte. Redis looks for the line's end with
// strchr, which stops at the NUL: it never runs the command and waits until the line is too
// long (64 KiB), then closes the connection.
var ErrInlineNUL = errors.New("NUL byte in inline request")

// Inline states, after sdssplitargs (Redis's sds.c), which splits an inline command's line.
const (
	inBlank  uint8 = iota // between arguments
	inPlain               // an unquoted argument
	inDQ                  // inside "..."
	inDQEsc               // after '\' inside "..."
	inDQHex               // after "\x"
	inDQHex2              // after "\x" and one hex digit
	inSQ                  // inside '...'
	inSQEsc               // after '\' inside '...'
	inClosed              // after a closing quote: a space or the line's end must follow
)

// Inline splits inline commands (a line of arguments, what redis-cli and telnet users send)
// chunk by chunk, by Redis's own rules: arguments are separated by blanks; "..." takes the
// escapes \n \r \t \b \a \xHH and \<any>; '...' takes \' only; a closing quote must be followed
// by a blank or the line's end; unbalanced quotes are an error; a blank line is no command; a
// NUL byte is an error (Redis never finds the end of such a line).
// A line ends at '\n' (a '\r' before it is a blank, or makes a quote unterminated).
type Inline struct {
	state uint8
	nargs int
	hex   byte // the value of the first hex digit after "\x"
	hexc  byte // and the digit itself
	one   [2]byte
	data  []byte
}

// Args is how many arguments the current line has begun so far.
func (l *Inline) Args() int { return l.nargs }

// Data is the text of the last Data event: the next bytes of argument Args()-1.
func (l *Inline) Data() []byte { return l.data }

// Reset prepares for the next line.
func (l *Inline) Reset() { *l = Inline{} }

// Scan consumes p until an event: Begin (a new argument starts: Args() counts it), Data, or
// End (the line ended; with Args() 0 it was blank: no command). None: p was consumed.
func (l *Inline) Scan(p []byte) (n int, ev Event, err error) {
	for i := 0; i < len(p); {
		c := p[i]
		if c == 0 {
			return i + 1, None, ErrInlineNUL
		}
		if c == '\n' {
			switch l.state {
			case inDQ, inDQEsc, inDQHex, inDQHex2, inSQ, inSQEsc:
				return i + 1, None, ErrUnbalancedQuotes
			}
			l.state = inBlank
			return i + 1, End, nil
		}
		switch l.state {
		case inBlank:
			if isSpace(c) {
				i++
				continue
			}
			l.state = inPlain
			l.nargs++
			return i, Begin, nil // c is read in inPlain
		case inPlain:
			j := i
			for j < len(p) && !isPlainSpecial(p[j]) {
				j++
			}
			if j > i {
				l.data = p[i:j]
				return j, Data, nil
			}
			i++
			switch c {
			case '"':
				l.state = inDQ
			case '\'':
				l.state = inSQ
			default: // ' ', '\r', '\t'
				l.state = inBlank
			}
		case inDQ, inSQ:
			j := i
			for j < len(p) && p[j] != '\\' && p[j] != '\n' && p[j] != 0 && p[j] != quoteOf(l.state) {
				j++
			}
			if j > i {
				l.data = p[i:j]
				return j, Data, nil
			}
			i++
			switch {
			case c == '\\' && l.state == inDQ:
				l.state = inDQEsc
			case c == '\\':
				l.state = inSQEsc
			default:
				l.state = inClosed
			}
		case inClosed:
			i++
			if !isSpace(c) {
				return i, None, ErrUnbalancedQuotes
			}
			l.state = inBlank
		default:
			var consumed bool
			if consumed, ev = l.escape(c); consumed {
				i++
			}
			if ev != None {
				return i, ev, nil
			}
		}
	}
	return len(p), None, nil
}

// escape handles c after a backslash inside quotes. consumed: c was used (else it is read
// again in the state escape left); ev is Data when a byte of the argument resulted.
func (l *Inline) escape(c byte) (consumed bool, ev Event) {
	switch l.state {
	case inSQEsc:
		l.state = inSQ
		if c == '\'' {
			return true, l.emit('\'', 0)
		}
		return false, l.emit('\\', 0)
	case inDQEsc:
		switch c {
		case 'x':
			l.state = inDQHex
			return true, None
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'b':
			c = '\b'
		case 'a':
			c = '\a'
		}
		l.state = inDQ
		return true, l.emit(c, 0)
	case inDQHex:
		if h, ok := hexVal(c); ok {
			l.hex, l.hexc, l.state = h, c, inDQHex2
			return true, None
		}
		l.state = inDQ // "\x" without hex digits is a plain "x"
		return false, l.emit('x', 0)
	default: // inDQHex2
		l.state = inDQ
		if h, ok := hexVal(c); ok {
			return true, l.emit(l.hex<<4|h, 0)
		}
		return false, l.emit('x', l.hexc)
	}
}

// emit makes one or two bytes the next Data (b2 == 0: one).
func (l *Inline) emit(b1, b2 byte) Event {
	l.one[0], l.one[1] = b1, b2
	l.data = l.one[:1]
	if b2 != 0 {
		l.data = l.one[:2]
	}
	return Data
}

// isSpace is C's isspace: what sdssplitargs skips between arguments.
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// isPlainSpecial ends a run of an unquoted argument's bytes: what ends the argument (space,
// '\n', '\r', '\t', NUL; not '\v' or '\f') or opens a quote.
func isPlainSpecial(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0 || c == '"' || c == '\''
}

func quoteOf(state uint8) byte {
	if state == inDQ {
		return '"'
	}
	return '\''
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
