package proxy

import (
	"slices"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// agreeLimits are the validator's Limits with nothing but the proxy's nesting bound, so that
// where a value ends is all that can differ.
var agreeLimits = cluster.Limits{MaxArrayLen: 1 << 62, MaxBulkLen: 1 << 62, MaxReplyElements: 1 << 62,
	MaxReplyBytes: 1 << 62, MaxDepth: maxDepth, MaxLineLen: 1 << 30}

// refEnds is internal/resp's own reading of p, in one piece: where each top-level value ends,
// and whether the stream broke after them. req reads p as requests: values that are commands
// (not "*0" or "*-1") are kept, up to stop, where an inline command begins.
func refEnds(p []byte, req bool) (ends []int, broke bool, stop int) {
	s := resp.Scanner{Lim: resp.NoLimits(maxDepth), Request: req, Watch: 2}
	args := 0
	for i := 0; ; {
		if req && s.Between() && i < len(p) && p[i] != '*' {
			return ends, false, i // an inline command: not the Scanner's
		}
		n, ev, err := s.Scan(p[i:])
		i += n
		switch {
		case err != nil:
			return ends, true, len(p)
		case ev == resp.None:
			return ends, false, len(p)
		case ev == resp.Done && s.Depth() == 1:
			args++
		case ev == resp.End:
			if !req || args > 0 {
				ends = append(ends, i)
			}
			args = 0
		}
	}
}

// FuzzScannerUsersAgree: every user of internal/resp (pkg/cluster's bounded validator, the
// proxy's reply scanner, request scanner and topology value parser) finds the values of any
// byte stream where internal/resp's Scanner does, in chunks of any size, and fails where it
// fails. The seeds are FuzzBoundedReader's and the chunking test's streams.
//
//	go test ./pkg/proxy -run '^$' -fuzz FuzzScannerUsersAgree -fuzztime 60s
func FuzzScannerUsersAgree(f *testing.F) {
	for _, s := range []string{
		"*1000000000\r\n", "$2000000000\r\n", "%1000000000\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 400 Bad Request\r\n\r\nSECRET-TOKEN\r\n",
		"+OK\r\n", "-ERR unknown command\r\n", ":1\r\n$-1\r\n*-1\r\n_\r\n",
		"|1\r\n+a\r\n:1\r\n*2\r\n:1\r\n:2\r\n", "%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n",
		"=8\r\ntxt:abcd\r\n!3\r\nERR\r\n(123\r\n>1\r\n+x\r\n",
		"*3\r\n$5\r\nRPUSH\r\n$9\r\n{cli}list\r\n$1\r\n1\r\n*0\r\n*2\r\n$4\r\nECHO\r\n$20\r\n01234567890123456789\r\n",
		">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n|1\r\n+k\r\n+v\r\n:5\r\n*2\r\n*1\r\n$3\r\nabc\r\n$0\r\n\r\n",
		"*2\r\n|1\r\n+k\r\n+v\r\n$3\r\nabc\r\n+a\rb\r\n",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		n := int(chunk%64) + 1
		want, broke, _ := refEnds(data, false)

		got, err := cluster.ReplyEnds(data, n, &agreeLimits)
		if !slices.Equal(got, want) || (err != nil) != broke {
			t.Fatalf("validator: ends %v (err %v), internal/resp: %v (broke %t)", got, err, want, broke)
		}

		got, err = scanAll(data, n, func(s *replyScanner, p []byte) (int, bool, error) { return s.scan(p) }, &replyScanner{})
		if !slices.Equal(got, want) || (err != nil) != broke {
			t.Fatalf("proxy reply scanner: ends %v (err %v), internal/resp: %v (broke %t)", got, err, want, broke)
		}

		start := 0
		for _, end := range want {
			frame := data[start:end]
			v, m, err := parseValue(frame, 0)
			if err != nil || m != len(frame) {
				t.Fatalf("value parser: %q: %d bytes, %v", frame, m, err)
			}
			if _, _, err := parseValue(frame[:len(frame)-1], 0); err == nil {
				t.Fatalf("value parser: a truncated %q parsed", frame)
			}
			if again, _, _ := refEnds(v.appendTo(nil), false); len(again) != 1 {
				t.Fatalf("value parser: %q re-encodes to %q", frame, v.appendTo(nil))
			}
			start = end
		}

		wantReq, brokeReq, stop := refEnds(data, true)
		got, err = scanAll(data[:stop], n, func(s *reqScanner, p []byte) (int, bool, error) { return s.scan(p) }, &reqScanner{})
		if !slices.Equal(got, wantReq) || (err != nil) != brokeReq {
			t.Fatalf("proxy request scanner: ends %v (err %v), internal/resp: %v (broke %t)", got, err, wantReq, brokeReq)
		}
	})
}

// scanAll feeds p in chunks of n to one of the proxy's scanners and returns where its frames
// ended, up to the first error.
func scanAll[S interface{ reset() }](p []byte, n int, scan func(S, []byte) (int, bool, error), s S) ([]int, error) {
	var ends []int
	for off := 0; off < len(p); off += n {
		chunk := p[off:min(off+n, len(p))]
		for i := 0; i < len(chunk); {
			k, end, err := scan(s, chunk[i:])
			if err != nil {
				return ends, err
			}
			i += k
			if end {
				ends = append(ends, off+i)
				s.reset()
			}
		}
	}
	return ends, nil
}
