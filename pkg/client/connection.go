package client

// This file is the one path from configuration to connections. Every reader of a Config that
// connects (Open's client, InspectorOptions for kubectl rconn, the proxy, the controller's
// inspectors) turns it into pkg/cluster options with ConnOptions; what two configurations
// must not share (ConnectionKey) and what a running client cannot change (RestartFields) are
// derived from the same table, configFields, which says for every Config field what it is to
// a connection. A new Config field is classified there (TestConfigFieldsClassified fails until
// it is); a new connection mode (Sentinel) adds its branch to ConnOptions.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Secret is the secret material connections are made with, next to a Config: credentials
// ("" when the Secret has no such key) and the TLS material (used when defaults.socket.tls).
type Secret struct {
	Username, Password string
	TLS                *rtls.Material
	// Sentinel mode: the sentinels' own credentials and TLS material (sentinel-* keys).
	SentinelUsername, SentinelPassword string
	SentinelTLS                        *rtls.Material
}

// ConnOptions converts a validated Config and its secret material to the pkg/cluster
// options that reach the nodes it describes: root nodes as parsed addresses, the mode, the
// defaults (credentials, TLS per server name from sec.TLS, connect timeout, database in
// standalone mode, client name), the cluster options, the node address map and the node-ID
// fallback map. tlsr is the certificate holder behind Defaults.TLSConfigFor (nil without
// TLS): Update it to rotate certificates for new connections.
//
// What is the caller's and not the configuration's is left zero: Dial, CredentialsProvider
// (set it to rotate credentials live), MaxTimeout, Limits, ReplyBudget, AddressPolicy, pool
// size and timeouts, HealthConcurrency (see optionsFromCaller).
func (c *Config) ConnOptions(sec Secret) (o cluster.Options, tlsr *rtls.Reloadable, err error) {
	if c.ModeOrDefault() == ModeSentinel {
		o, tlsr, _, err = c.sentinelConnOptions(sec)
		return o, tlsr, err
	}
	standalone := c.ModeOrDefault() == ModeStandalone
	o = cluster.Options{
		Standalone:             standalone,
		UseReplicas:            c.UseReplicas,
		MinimizeConnections:    c.MinimizeConnections,
		MaxCommandRedirections: c.MaxCommandRedirections,
		Defaults: cluster.NodeOptions{
			Username:       sec.Username,
			Password:       sec.Password,
			TLSServerName:  c.Defaults.Socket.ServerName,
			ConnectTimeout: time.Duration(c.Defaults.Socket.ConnectTimeout) * time.Millisecond,
			ClientName:     c.Defaults.Name,
		},
	}
	if standalone {
		o.Defaults.DB = c.Defaults.Database
	}
	for i, rn := range c.RootNodes {
		u, err := cluster.ParseURL(rn.URL)
		if err != nil {
			return cluster.Options{}, nil, fmt.Errorf("rconn: rootNodes[%d]: %w", i, err)
		}
		// Parsed, not the URL: credentials never come from config.json, and TLS is
		// defaults.socket.tls (Validate keeps rediss:// and it in agreement).
		o.RootNodes = append(o.RootNodes, cluster.RootNode{Address: u.Address})
		if standalone && u.DB != 0 {
			o.Defaults.DB = u.DB // the URL's database wins, as in node-redis
		}
	}
	if o.NodeAddressMap, err = nodeMapOf(c.NodeAddressMap); err != nil {
		return cluster.Options{}, nil, err
	}
	o.NodeIDMap = nodeIDsOf(c.Rconn.NodeIDs)
	if c.Defaults.Socket.TLS {
		tlsr, err = rtls.NewReloadable(rtls.Options{Material: sec.TLS, ServerName: c.Defaults.Socket.ServerName, InsecureSkipVerify: c.Rconn.TLSInsecureSkipVerify})
		if err != nil {
			return cluster.Options{}, nil, fmt.Errorf("rconn: TLS material: %w", err)
		}
		o.Defaults.TLSConfigFor = tlsr.ConfigFor
	}
	return o, tlsr, nil
}

// sentinelConnOptions is ConnOptions in sentinel mode: the data nodes' options from
// nodeClientOptions (the master and replicas are found through the sentinels, so there are no
// root nodes), and Options.Sentinel from name, sentinelRootNodes and sentinelClientOptions with
// the sentinels' own secret material. sentTLS is the sentinels' certificate holder (nil
// without sentinel TLS), for a caller that rotates certificates in place.
func (c *Config) sentinelConnOptions(sec Secret) (o cluster.Options, tlsr, sentTLS *rtls.Reloadable, err error) {
	data, sent := c.NodeClientOptions, c.SentinelClientOptions
	o = cluster.Options{
		UseReplicas: c.UseReplicas,
		Defaults: cluster.NodeOptions{
			Username: sec.Username, Password: sec.Password, DB: data.Database, ClientName: data.Name,
			TLSServerName:  data.Socket.ServerName,
			ConnectTimeout: time.Duration(data.Socket.ConnectTimeout) * time.Millisecond,
		},
		Sentinel: &cluster.SentinelOptions{
			MasterName: c.Name,
			Defaults: cluster.NodeOptions{
				Username: sec.SentinelUsername, Password: sec.SentinelPassword, ClientName: sent.Name,
				TLSServerName:  sent.Socket.ServerName,
				ConnectTimeout: time.Duration(sent.Socket.ConnectTimeout) * time.Millisecond,
			},
		},
	}
	// A root is named by its announced address when rconn.sentinels has one the map sends
	// there: the sentinels list each other by announced address, and one sentinel known under
	// two names would be asked, and counted in the majority, twice.
	// Without rconn.sentinels (the controller's own options, before any topology), a target
	// exactly one map entry reaches names its root the same way.
	byReachable, targets := map[string]string{}, map[string][]string{}
	for a, to := range c.NodeAddressMap {
		targets[to.String()] = append(targets[to.String()], a)
	}
	for to, as := range targets {
		if len(as) == 1 {
			byReachable[to] = as[0]
		}
	}
	for _, a := range c.Rconn.Sentinels {
		if to, ok := c.NodeAddressMap[a]; ok {
			byReachable[to.String()] = a
		}
	}
	for _, n := range c.SentinelRootNodes {
		rn := cluster.RootNode{Address: cluster.Address{Host: n.Host, Port: n.Port}}
		if a, ok := byReachable[n.String()]; ok {
			if pa, err := cluster.ParseAddress(a); err == nil {
				rn.Address = pa
			}
		}
		o.Sentinel.RootNodes = append(o.Sentinel.RootNodes, rn)
	}
	if o.NodeAddressMap, err = nodeMapOf(c.NodeAddressMap); err != nil {
		return cluster.Options{}, nil, nil, err
	}
	if data.Socket.TLS {
		if tlsr, err = rtls.NewReloadable(rtls.Options{Material: sec.TLS, ServerName: data.Socket.ServerName, InsecureSkipVerify: c.Rconn.TLSInsecureSkipVerify}); err != nil {
			return cluster.Options{}, nil, nil, fmt.Errorf("rconn: TLS material: %w", err)
		}
		o.Defaults.TLSConfigFor = tlsr.ConfigFor
	}
	if sent.Socket.TLS {
		if sentTLS, err = rtls.NewReloadable(rtls.Options{Material: sec.SentinelTLS, ServerName: sent.Socket.ServerName, InsecureSkipVerify: c.Rconn.SentinelTLSInsecureSkipVerify}); err != nil {
			return cluster.Options{}, nil, nil, fmt.Errorf("rconn: sentinel TLS material: %w", err)
		}
		o.Sentinel.Defaults.TLSConfigFor = sentTLS.ConfigFor
	}
	return o, tlsr, sentTLS, nil
}

// optionsFromCaller are the cluster.Options fields ConnOptions leaves to its caller: they
// are not in config.json, so ConnectionKey does not cover them. A caller sharing connections
// between configurations must set them alike for all (the controller's are manager-wide).
// TestConnOptionsCoverClusterOptions fails when cluster.Options grows a field that is neither
// set by ConnOptions nor listed here.
var optionsFromCaller = map[string]string{
	"Dial":                         "the caller's dial seam (manager-wide in the controller)",
	"Defaults.CredentialsProvider": "live credential rotation of one client; the values are Secret, in the key",
	"Defaults.TLS":                 "ConnOptions sets TLSConfigFor instead; the material is in the key",
	"MaxTimeout":                   "a manager-wide cap, the same for every configuration",
	"Limits":                       "manager-wide reply limits",
	"ReplyBudget":                  "the manager's one budget",
	"AddressPolicy":                "manager-wide address policy",
	"PoolSize":                     "go-redis pool tuning of one client",
	"ReadTimeout":                  "go-redis / inspector timeout of one caller",
	"WriteTimeout":                 "go-redis / inspector timeout of one caller",
	"HealthConcurrency":            "inspector tuning, manager-wide",
}

// fieldRole says what a Config field is to a connection.
type fieldRole struct {
	// key: connections are made of it; two configurations that differ in it never share
	// connections (ConnectionKey).
	key bool
	// restart: a running client cannot apply a change to it (RestartFields).
	restart bool
}

// configFields classifies every Config field by its JSON path: a path names the field and
// everything under it; a struct field not listed is classified field by field. Unlisted
// leaves count as key and restart (the safe side) and fail TestConfigFieldsClassified.
var configFields = map[string]fieldRole{
	// Derived from rootNodes and defaults.database, which carry its meaning.
	"url":                    {},
	"rootNodes":              {key: true, restart: true},
	"defaults":               {key: true, restart: true},
	"useReplicas":            {key: true, restart: true},
	"minimizeConnections":    {key: true, restart: true},
	"maxCommandRedirections": {key: true, restart: true},
	// Applied live; whom a mapped address reaches is part of the connection.
	"nodeAddressMap": {key: true},
	// Client behaviour on top of the connections.
	"scripts":                     {restart: true},
	"functions":                   {restart: true},
	"rconn.mode":                  {key: true, restart: true},
	"rconn.reconnectStrategy":     {restart: true},
	"rconn.autoPipeline":          {restart: true},
	"rconn.tlsInsecureSkipVerify": {key: true, restart: true},
	// Which Secret keys hold the material; the material itself is in the key (Secret).
	"rconn.secretFiles": {restart: true},
	// Applied live; the Inspector does not use it, and the controller renders it from what its
	// inspector found.
	"rconn.nodeIds": {},
	// Pairing of config.json with its Secret, applied live.
	"rconn.secretKeys":        {},
	"rconn.secretToken":       {},
	"rconn.functionLibraries": {restart: true},
	// Sentinel mode (sentinelconfig.go): the group, the data nodes' and the sentinels' options.
	"name":                                {key: true, restart: true},
	"sentinelRootNodes":                   {key: true, restart: true},
	"nodeClientOptions":                   {key: true, restart: true},
	"sentinelClientOptions":               {key: true, restart: true},
	"replicaPoolSize":                     {key: true, restart: true},
	"rconn.sentinelTlsInsecureSkipVerify": {key: true, restart: true},
	// Applied live: which announced addresses are sentinels (dialed with the sentinels' TLS
	// and credentials); a different set means different connections.
	"rconn.sentinels": {key: true},
}

// normalized are the fields whose empty value means a default: compared and keyed by the
// value they mean, so "" and "cluster" are the same mode.
var normalized = map[string]func(c *Config) any{
	"rconn.mode":        func(c *Config) any { return c.ModeOrDefault() },
	"rconn.secretFiles": func(c *Config) any { return c.Rconn.SecretFiles.withDefaults() },
}

// configField is one classified field of a Config value.
type configField struct {
	path  string
	role  fieldRole
	value any
}

// classifiedFields walks c by configFields, in struct order, with normalized values.
// unclassified collects the paths of leaves configFields does not name.
func classifiedFields(c *Config) (out []configField, unclassified []string) {
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			path := prefix + name
			role, ok := configFields[path]
			if !ok && v.Field(i).Kind() == reflect.Struct {
				walk(v.Field(i), path+".")
				continue
			}
			if !ok {
				unclassified = append(unclassified, path)
				role = fieldRole{key: true, restart: true}
			}
			value := v.Field(i).Interface()
			if n, ok := normalized[path]; ok {
				value = n(c)
			}
			out = append(out, configField{path, role, value})
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out, unclassified
}

// ConnectionKey names what connections made from cfg and sec are made of: the key fields of
// configFields and the secret material, by content. Two configurations with the same key
// may share connections (the controller's inspectors); any difference in those gives another
// key. The caller adds what is its own (optionsFromCaller) when that differs between them.
func ConnectionKey(cfg *Config, sec Secret) string {
	h := sha256.New()
	fields, _ := classifiedFields(cfg)
	for _, f := range fields {
		if !f.role.key {
			continue
		}
		b, err := json.Marshal(f.value)
		if err != nil {
			b = fmt.Appendf(nil, "%#v", f.value) // not reached: Config is JSON
		}
		h.Write(fmt.Appendf(nil, "%s=%d:%s|", f.path, len(b), b))
	}
	h.Write(fmt.Appendf(nil, "user=%d:%s|pass=%d:%s|", len(sec.Username), sec.Username, len(sec.Password), sec.Password))
	if m := sec.TLS; m != nil {
		h.Write(fmt.Appendf(nil, "ca=%d:%s|crt=%d:%s|key=%d:%s|", len(m.CA), m.CA, len(m.Cert), m.Cert, len(m.Key), m.Key))
	}
	h.Write(fmt.Appendf(nil, "suser=%d:%s|spass=%d:%s|", len(sec.SentinelUsername), sec.SentinelUsername, len(sec.SentinelPassword), sec.SentinelPassword))
	if m := sec.SentinelTLS; m != nil {
		h.Write(fmt.Appendf(nil, "sca=%d:%s|scrt=%d:%s|skey=%d:%s|", len(m.CA), m.CA, len(m.Cert), m.Cert, len(m.Key), m.Key))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// restartFields lists the fields that differ and cannot be applied live (configFields).
func restartFields(a, b *Config) []string {
	fa, _ := classifiedFields(a)
	fb, _ := classifiedFields(b)
	var out []string
	for i, f := range fa {
		if f.role.restart && !reflect.DeepEqual(f.value, fb[i].value) {
			out = append(out, f.path)
		}
	}
	return out
}

// nodeMapOf is config.json's nodeAddressMap as pkg/cluster's.
func nodeMapOf(nm map[string]MappedAddress) (cluster.NodeAddressMap, error) {
	if len(nm) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(nm))
	for k, v := range nm {
		m[k] = v.String()
	}
	return cluster.StaticMap(m)
}

// nodeIDsOf is config.json's rconn.nodeIds as pkg/cluster's.
func nodeIDsOf(ids map[string]MappedAddress) cluster.NodeIDMap {
	if len(ids) == 0 {
		return nil
	}
	m := make(cluster.NodeIDMap, len(ids))
	for k, v := range ids {
		m[k] = cluster.Address{Host: v.Host, Port: v.Port}
	}
	return m
}

// ConnectionKeyFields lists the JSON paths of the Config fields ConnectionKey covers (besides
// the secret material), for tests of the callers that render a Config.
func ConnectionKeyFields() []string {
	var out []string
	fields, _ := classifiedFields(&Config{})
	for _, f := range fields {
		if f.role.key {
			out = append(out, f.path)
		}
	}
	return out
}
