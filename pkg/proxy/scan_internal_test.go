package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// Every chunking of a stream finds the same commands and reply frames as the whole stream.
func TestScannersAcrossChunkBoundaries(t *testing.T) {
	var req strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&req, "*3\r\n$5\r\nRPUSH\r\n$9\r\n{cli}list\r\n$%d\r\n%d\r\n", len(fmt.Sprint(i)), i)
	}
	req.WriteString("PING\r\n\r\nCLUSTER  slots\r\n*2\r\n$4\r\nECHO\r\n$20\r\n01234567890123456789\r\n")
	reply := ":1\r\n+OK\r\n-ERR x\r\n$-1\r\n*-1\r\n_\r\n%1\r\n+a\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n|1\r\n+k\r\n+v\r\n:5\r\n*2\r\n*1\r\n$3\r\nabc\r\n$0\r\n\r\n,1.5\r\n#t\r\n(12\r\n=7\r\ntxt:abc\r\n~1\r\n+x\r\n"
	wantFrames := []string{":", "+OK", "-", "$", "*", "_", "%a", ">subscribe", "|", "*", ",", "#", "(", "=", "~x"}
	for size := 1; size <= 64; size++ {
		var cmds []string
		var rs reqScanner
		b := []byte(req.String())
		for off := 0; off < len(b); off += size {
			chunk := b[off:min(off+size, len(b))]
			for i := 0; i < len(chunk); {
				n, done, err := rs.scan(chunk[i:])
				if err != nil {
					t.Fatalf("chunk size %d: %v", size, err)
				}
				i += n
				if done {
					c := rs.command()
					cmds = append(cmds, fmt.Sprintf("%s/%s/%d", c.args[0], c.args[1], c.nargs))
					rs.reset()
				}
			}
		}
		if len(cmds) != 33 || cmds[30] != "PING//1" || cmds[31] != "CLUSTER/slots/2" || cmds[32] != "ECHO/01234567890123456789/2" {
			t.Fatalf("chunk size %d: commands %v", size, cmds[max(0, len(cmds)-4):])
		}
		var frames []string
		var sc replyScanner
		b = []byte(reply)
		for off := 0; off < len(b); off += size {
			chunk := b[off:min(off+size, len(b))]
			for i := 0; i < len(chunk); {
				n, end, err := sc.scan(chunk[i:])
				if err != nil {
					t.Fatalf("chunk size %d: %v", size, err)
				}
				i += n
				if end {
					frames = append(frames, string(sc.top)+string(sc.firstString()))
					sc.reset()
				}
			}
		}
		if strings.Join(frames, " ") != strings.Join(wantFrames, " ") {
			t.Fatalf("chunk size %d: frames %q, want %q", size, frames, wantFrames)
		}
	}
}
