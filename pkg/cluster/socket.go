package cluster

import "net"

// PlainSocket returns the TCP socket beneath c, a connection the Dialer returned (or a bare
// *net.TCPConn), when reading c is reading that socket: no TLS and no wrapper that looks at
// the bytes. rconn-proxy reads such sockets through syscall.RawConn (pkg/proxy readLoop);
// anything else must be read through c itself.
func PlainSocket(c net.Conn) (*net.TCPConn, bool) {
	if m, ok := c.(*mappedConn); ok {
		c = m.Conn // mappedConn only adds Close and SyscallConn: its reads are the socket's
	}
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}
