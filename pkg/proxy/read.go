package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// readLoop reads c into buf until c ends, handing every chunk to on; it returns on's first
// error, or the one that ended the reading (io.EOF for a clean end).
//
// Why not c.Read in a loop: a request/reply hop mostly moves one short chunk at a time, and
// net.Conn.Read always tries the read(2) first, so every chunk costs a second read(2) that
// fails with EAGAIN before the goroutine parks (6 syscalls per proxied command instead of 4:
// pprof put ~70% of rconn-proxy's CPU in syscalls). On a socket (syscall.Conn) the loop runs
// inside RawConn.Read instead, and after a read shorter than buf, which emptied the socket's
// receive queue, it waits for the poller first: data arriving after that read raises a new
// edge-triggered readiness event, so nothing is missed. Only a plain TCP socket gets this
// (cluster.PlainSocket): TLS to a node, a handshake's wrapper or any other net.Conn has reads
// of its own, and gets the plain loop.
func readLoop(c net.Conn, buf []byte, on func([]byte) error) error {
	sc, ok := cluster.PlainSocket(c)
	if !ok {
		return plainReadLoop(c, buf, on)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return plainReadLoop(c, buf, on)
	}
	var res error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf)
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				return false // wait for readiness
			case err != nil:
				res = os.NewSyscallError("read", err)
				return true
			case n == 0:
				res = io.EOF
				return true
			}
			if res = on(buf[:n]); res != nil {
				return true
			}
			if n < len(buf) {
				return false // the queue was emptied: wait for the next edge, not for EAGAIN
			}
		}
	})
	if res != nil {
		return res
	}
	return err
}

func plainReadLoop(c net.Conn, buf []byte, on func([]byte) error) error {
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if werr := on(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}
