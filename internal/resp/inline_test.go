package resp

import (
	"errors"
	"slices"
	"testing"
)

// splitInline runs Inline over line in chunks of n and returns the arguments of each command.
func splitInline(line string, n int) ([][]string, error) {
	var l Inline
	var cmds [][]string
	var cur []string
	p := []byte(line)
	for off := 0; off < len(p); off += n {
		chunk := p[off:min(off+n, len(p))]
		for i := 0; ; {
			k, ev, err := l.Scan(chunk[i:])
			i += k
			if err != nil {
				return cmds, err
			}
			switch ev {
			case Begin:
				cur = append(cur, "")
			case Data:
				cur[len(cur)-1] += string(l.Data())
			case End:
				if l.Args() > 0 {
					cmds = append(cmds, cur)
				}
				cur = nil
				l.Reset()
			}
			if ev == None {
				break
			}
		}
	}
	return cmds, nil
}

// TestInlineSplitsLikeRedis: sdssplitargs's rules (Redis 7.0 sds.c), in chunks of any size.
func TestInlineSplitsLikeRedis(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [][]string
		err  error
	}{
		{"PING\r\n", [][]string{{"PING"}}, nil},
		{"  set  k\tv \r\n\r\n \n", [][]string{{"set", "k", "v"}}, nil},
		{`CLIENT REPLY "SKIP"` + "\r\n", [][]string{{"CLIENT", "REPLY", "SKIP"}}, nil},
		{`CLIENT REPLY 'skip'` + "\n", [][]string{{"CLIENT", "REPLY", "skip"}}, nil},
		{`set k "a\x41\x4g\n\"\\\q"` + "\r\n", [][]string{{"set", "k", "aA" + "x4g\n\"\\q"}}, nil},
		{`set k 'it\'s \n'` + "\n", [][]string{{"set", "k", `it's \n`}}, nil},
		{`a"b c"d` + "\n", nil, ErrUnbalancedQuotes}, // a closing quote must be followed by a blank
		{`a"b c" d` + "\n", [][]string{{"ab c", "d"}}, nil},
		{`""` + "\n", [][]string{{""}}, nil},
		{`echo "unterminated` + "\r\n", nil, ErrUnbalancedQuotes},
		{`echo 'unterminated` + "\n", nil, ErrUnbalancedQuotes},
		{"echo \"a\r\n", nil, ErrUnbalancedQuotes},
		{"a\vb c\n", [][]string{{"a\vb", "c"}}, nil}, // \v ends no argument, but is a blank between them
		{"a b\x00c d\nPING\n", nil, ErrInlineNUL},    // Redis never finds this line's end
		{"\"a\x00\"\n", nil, ErrInlineNUL},
		{"\"\\x4\"\n", [][]string{{"x4"}}, nil},
	} {
		for _, n := range []int{1, 2, 3, 1 << 10} {
			got, err := splitInline(tc.in, n)
			if !errors.Is(err, tc.err) || tc.err == nil && !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("%q in chunks of %d: %q, %v; want %q, %v", tc.in, n, got, err, tc.want, tc.err)
			}
		}
	}
}
