package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Address is a node address: a host (DNS name or IP, IPv6 without brackets) and a port.
type Address struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// String is "host:port", with IPv6 hosts in brackets.
func (a Address) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// ErrInvalidAddress is wrapped by every address and URL parsing error.
var ErrInvalidAddress = errors.New("invalid address")

// ParseAddress parses "host:port" (IPv6 in brackets). The port must be 1-65535.
func ParseAddress(s string) (Address, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Address{}, fmt.Errorf("%w %q: want host:port (IPv6 in brackets): %v", ErrInvalidAddress, s, stripQuoted(err))
	}
	if host == "" {
		return Address{}, fmt.Errorf("%w %q: empty host", ErrInvalidAddress, s)
	}
	if strings.ContainsAny(host, " /@?#") {
		return Address{}, fmt.Errorf("%w %q: host %q is not a DNS name or IP address", ErrInvalidAddress, s, host)
	}
	p, err := parsePort(port)
	if err != nil {
		return Address{}, fmt.Errorf("%w %q: %w", ErrInvalidAddress, s, err)
	}
	return Address{Host: host, Port: p}, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("port %q is not a number", s)
		}
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("port %s out of range 1-65535", s)
	}
	p, _ := strconv.Atoi(s)
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", p)
	}
	return p, nil
}

// stripQuoted drops the echo of the input that net errors carry (the caller already quotes it).
func stripQuoted(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// URL is a parsed node-redis connection URL:
// redis[s]://[[username][:password]@][host][:port][/db-number].
type URL struct {
	// TLS is true for rediss://.
	TLS      bool
	Username string
	Password string
	// Address defaults to localhost:6379.
	Address Address
	// DB is the database number (default 0).
	DB int
}

// DefaultPort is the port of a URL or root node without one.
const DefaultPort = 6379

var passwordInURL = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):[^@/]*@`)

// RedactURL replaces the password in a URL-like string with "xxxxx", also when the string does
// not parse, so errors and logs never carry it.
func RedactURL(s string) string { return passwordInURL.ReplaceAllString(s, "${1}:xxxxx@") }

// ParseURL parses redis[s]://[[username][:password]@][host][:port][/db-number] with node-redis
// defaults (localhost, 6379, database 0). Userinfo is percent-decoded; IPv6 literals go in
// brackets. Errors never contain the password.
func ParseURL(raw string) (*URL, error) {
	shown := RedactURL(raw)
	fail := func(format string, args ...any) (*URL, error) {
		return nil, fmt.Errorf("%w: url %q: %s", ErrInvalidAddress, shown, fmt.Sprintf(format, args...))
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fail("want redis[s]://[[username][:password]@][host][:port][/db-number]")
	}
	u := &URL{Address: Address{Host: "localhost", Port: DefaultPort}}
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		u.TLS = true
	default:
		return fail("unknown scheme %q: want redis:// or rediss://", scheme)
	}
	if strings.ContainsAny(rest, "?") {
		return fail("query parameters are not supported")
	}
	if strings.Contains(rest, "#") {
		return fail("fragments are not supported")
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	hostport := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo := authority[:i]
		hostport = authority[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if u.Username, err = url.PathUnescape(user); err != nil {
			return fail("bad percent-encoding in username")
		}
		if hasPass {
			if u.Password, err = url.PathUnescape(pass); err != nil {
				return fail("bad percent-encoding in password")
			}
		}
	}
	if hostport != "" {
		host, port := hostport, ""
		if strings.HasPrefix(hostport, "[") {
			end := strings.IndexByte(hostport, ']')
			if end < 0 {
				return fail("missing ']' after IPv6 address")
			}
			host = hostport[1:end]
			if net.ParseIP(host) == nil || !strings.Contains(host, ":") {
				return fail("%q is not an IPv6 address", host)
			}
			after := hostport[end+1:]
			if after != "" {
				if !strings.HasPrefix(after, ":") {
					return fail("unexpected %q after IPv6 address", after)
				}
				port = after[1:]
				if port == "" {
					return fail("empty port")
				}
			}
		} else {
			if strings.Count(hostport, ":") > 1 {
				return fail("IPv6 addresses go in brackets: redis://[::1]:6379")
			}
			if h, p, found := strings.Cut(hostport, ":"); found {
				host, port = h, p
				if port == "" {
					return fail("empty port")
				}
			}
			if host != "" && !validHost(host) {
				return fail("host %q is not a DNS name or IP address", host)
			}
		}
		if host != "" {
			h, err := url.PathUnescape(host)
			if err != nil {
				return fail("bad percent-encoding in host")
			}
			u.Address.Host = h
		}
		if port != "" {
			p, err := parsePort(port)
			if err != nil {
				return fail("%v", err)
			}
			u.Address.Port = p
		}
	}
	if path != "" && path != "/" {
		db := path[1:]
		if strings.Contains(db, "/") {
			return fail("unexpected path %q: only /db-number may follow the address", path)
		}
		for _, r := range db {
			if r < '0' || r > '9' {
				return fail("database %q is not a number", db)
			}
		}
		if len(db) > 9 {
			return fail("database %s is too large", db)
		}
		u.DB, _ = strconv.Atoi(db)
	}
	return u, nil
}

func validHost(h string) bool {
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '%':
		default:
			return false
		}
	}
	return true
}

// String renders the URL back, with the password redacted.
func (u *URL) String() string {
	var b strings.Builder
	if u.TLS {
		b.WriteString("rediss://")
	} else {
		b.WriteString("redis://")
	}
	if u.Username != "" || u.Password != "" {
		b.WriteString(url.PathEscape(u.Username))
		if u.Password != "" {
			b.WriteString(":xxxxx")
		}
		b.WriteByte('@')
	}
	b.WriteString(u.Address.String())
	if u.DB != 0 {
		b.WriteString("/" + strconv.Itoa(u.DB))
	}
	return b.String()
}
