package proxy

import (
	"bytes"
	"net"
	"strconv"
	"strings"
)

// router names the proxy's listener for a node: by node ID when known, else by the address
// the node announces. ok=false: no listener (the reply keeps the announced address).
type router interface {
	local(id, announced string) (host string, port int, ok bool)
}

// Kinds of replies that name nodes.
const (
	kindNone   uint8 = iota
	kindSlots        // CLUSTER SLOTS
	kindShards       // CLUSTER SHARDS
	kindNodes        // CLUSTER NODES, REPLICAS, SLAVES (node lines)
	kindError        // a top-level error: -MOVED / -ASK
)

// rewrite returns the reply with node addresses replaced by the proxy's listeners. A reply it
// does not understand (an error, another shape) is returned unchanged.
func rewrite(kind uint8, frame []byte, rt router) []byte {
	if kind == kindError {
		return rewriteRedirect(frame, rt)
	}
	v, n, err := parseValue(frame, 0)
	if err != nil || n != len(frame) || v.t == '-' || v.t == '!' {
		return frame
	}
	switch kind {
	case kindSlots:
		rewriteSlots(&v, rt)
	case kindShards:
		rewriteShards(&v, rt)
	case kindNodes:
		rewriteNodes(&v, rt)
	}
	return v.appendTo(make([]byte, 0, len(frame)+len(frame)/4))
}

// rewriteRedirect rewrites "-MOVED <slot> <host:port>" and "-ASK <slot> <host:port>".
func rewriteRedirect(line []byte, rt router) []byte {
	text := strings.TrimSuffix(string(line[1:]), "\r\n")
	f := strings.Fields(text)
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return line
	}
	host, port, ok := rt.local("", f[2])
	if !ok {
		return line
	}
	return []byte("-" + f[0] + " " + f[1] + " " + net.JoinHostPort(host, strconv.Itoa(port)) + "\r\n")
}

// rewriteSlots: [[start, end, [host, port, id, {metadata}], ...], ...].
func rewriteSlots(v *value, rt router) {
	if !v.isAggregate() {
		return
	}
	for i := range v.a {
		r := &v.a[i]
		if !r.isAggregate() {
			continue
		}
		for j := 2; j < len(r.a); j++ {
			nd := &r.a[j]
			if !nd.isAggregate() || len(nd.a) < 2 {
				continue
			}
			h, _ := nd.a[0].str()
			p := nd.a[1].integer()
			id := ""
			if len(nd.a) > 2 {
				id, _ = nd.a[2].str()
			}
			host, port, ok := rt.local(id, net.JoinHostPort(h, strconv.FormatInt(p, 10)))
			if !ok {
				continue
			}
			nd.a[0].setString(host)
			nd.a[1] = intValue(port)
			if len(nd.a) > 3 && nd.a[3].isAggregate() {
				md := &nd.a[3]
				for k := 0; k+1 < len(md.a); k += 2 {
					if key, _ := md.a[k].str(); key == "ip" || key == "hostname" {
						md.a[k+1].setString(host)
					}
				}
			}
		}
	}
}

// rewriteShards: [{slots: [...], nodes: [{id, port|tls-port, ip, endpoint, hostname, ...}]}].
// A map is a RESP3 map or, in RESP2, a flat key-value array.
func rewriteShards(v *value, rt router) {
	if !v.isAggregate() {
		return
	}
	for i := range v.a {
		sh := &v.a[i]
		if !sh.isAggregate() {
			continue
		}
		for k := 0; k+1 < len(sh.a); k += 2 {
			if key, _ := sh.a[k].str(); key != "nodes" || !sh.a[k+1].isAggregate() {
				continue
			}
			nodes := &sh.a[k+1]
			for j := range nodes.a {
				rewriteShardNode(&nodes.a[j], rt)
			}
		}
	}
}

func rewriteShardNode(nd *value, rt router) {
	if !nd.isAggregate() {
		return
	}
	var id, host string
	var port int64
	for k := 0; k+1 < len(nd.a); k += 2 {
		key, _ := nd.a[k].str()
		switch key {
		case "id":
			id, _ = nd.a[k+1].str()
		case "endpoint":
			host, _ = nd.a[k+1].str()
		case "port", "tls-port":
			if port == 0 {
				port = nd.a[k+1].integer()
			}
		}
	}
	lh, lp, ok := rt.local(id, net.JoinHostPort(host, strconv.FormatInt(port, 10)))
	if !ok {
		return
	}
	out := nd.a[:0:0]
	sawPort := false
	for k := 0; k+1 < len(nd.a); k += 2 {
		key, val := nd.a[k], nd.a[k+1]
		name, _ := key.str()
		switch name {
		case "port", "tls-port":
			// The listener is plaintext: one "port" key with its port, no "tls-port".
			if sawPort {
				continue
			}
			sawPort = true
			key.setString("port")
			val = intValue(lp)
		case "ip", "endpoint":
			val.setString(lh)
		case "hostname":
			if s, _ := val.str(); s != "" {
				val.setString(lh)
			}
		}
		out = append(out, key, val)
	}
	nd.a = out
}

// rewriteNodes: CLUSTER NODES text, or CLUSTER REPLICAS' array of such lines.
func rewriteNodes(v *value, rt router) {
	if v.isAggregate() {
		for i := range v.a {
			rewriteNodes(&v.a[i], rt)
		}
		return
	}
	text, ok := v.str()
	if !ok {
		return
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		b.WriteString(rewriteNodeLine(line, rt))
	}
	v.setString(b.String())
}

// rewriteNodeLine: "<id> <ip:port@cport[,hostname]> <flags> ...".
func rewriteNodeLine(line string, rt router) string {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 3 {
		return line
	}
	addr, hostname, hasHostname := strings.Cut(f[1], ",")
	hp, bus, _ := strings.Cut(addr, "@")
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return line
	}
	announced := hp
	if hasHostname && hostname != "" {
		announced = net.JoinHostPort(hostname, p)
	}
	lh, lp, ok := rt.local(f[0], announced)
	if !ok {
		_ = h
		return line
	}
	out := net.JoinHostPort(lh, strconv.Itoa(lp)) + "@" + bus
	if hasHostname {
		if hostname != "" {
			hostname = lh
		}
		out += "," + hostname
	}
	return f[0] + " " + out + " " + f[2]
}

var (
	bMOVED = []byte("-MOVED ")
	bASK   = []byte("-ASK ")
)

// isRedirect tells whether a captured error line is a redirection worth parsing.
func isRedirect(line []byte) bool {
	return bytes.HasPrefix(line, bMOVED) || bytes.HasPrefix(line, bASK)
}
