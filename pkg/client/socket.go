package client

import (
	"path"
	"strings"
)

// MaxSocketPathLen is the longest Unix socket path Linux can dial (sun_path holds 108 bytes,
// one of them the terminating NUL).
const MaxSocketPathLen = 107

// validateSocketPath checks defaults.socket.path: a Unix socket (a Redis sidecar's, shared
// through an emptyDir) exists in standalone mode only, because a cluster client must reach every
// node by its announced address; Redis serves its socket in plaintext, so not with TLS.
func (c *Config) validateSocketPath(p *problems, mode string) {
	sp := c.Defaults.Socket.Path
	if sp == "" {
		return
	}
	if mode != ModeStandalone {
		p.bad("defaults.socket.path: a Unix socket is for standalone mode only (a cluster client reaches every node by address)")
	}
	if c.Defaults.Socket.TLS {
		p.bad("defaults.socket.path: a Unix socket does not go with TLS (Redis serves it in plaintext)")
	}
	if len(sp) > MaxSocketPathLen {
		p.bad("defaults.socket.path: %d bytes, at most %d fit a Unix socket address", len(sp), MaxSocketPathLen)
	}
	if !strings.HasPrefix(sp, "/") || path.Clean(sp) != sp || sp == "/" || strings.ContainsRune(sp, 0) {
		p.bad("defaults.socket.path %q: want a clean absolute file path", sp)
	}
}
