package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// config.json is bound to its Secret: the Secret carries the SHA-256 of the exact config.json
// bytes it was rendered with (SecretKeyConfigDigest), and the client applies no config.json
// whose digest is not there. Everything in config.json that steers where the client connects
// (rootNodes, nodeAddressMap, rconn.nodeIds, servername) and so where it sends the Secret's
// credentials thereby comes from what the controller rendered: whoever may edit the ConfigMap
// but not the Secret cannot redirect them (docs/security.md).
//
// A plain hash, not an HMAC: config.json is not secret (every ConfigMap reader has it), so its
// digest tells nobody anything, and what makes it authentic is where it is stored — in the
// Secret, which the ConfigMap editor cannot write. An HMAC key would have to live in that same
// Secret and would add nothing.
//
// The exact bytes, not a canonical form: the client then needs to understand nothing of the
// file to check it (a client older than the controller, or one in another language, checks a
// config.json with fields it does not know: `sha256sum config.json`), and every byte an app
// might act on is covered, fields this package ignores included. The digest covers
// rconn.secretToken too; the controller draws the token before it renders (see
// controllers/secrettoken.go), so there is no cycle.

// ErrConfigNotBound is wrapped by the error that rejects a config.json which is not the one
// its Secret was rendered with: the Secret's SecretKeyConfigDigest is missing or is not the
// SHA-256 of config.json. The client refuses it (Open fails; a reload keeps the last good
// configuration and reports it as an EventError, also logged with slog.Default): its node
// address map could send the credentials anywhere.
var ErrConfigNotBound = errors.New("config.json is not the one its Secret was rendered with")

// ConfigDigest is the SecretKeyConfigDigest value binding config.json to a Secret: the
// lower-case hex SHA-256 of its exact bytes.
func ConfigDigest(config []byte) string {
	sum := sha256.Sum256(config)
	return hex.EncodeToString(sum[:])
}

// BindSecret renders cfg as config.json bound to the Secret data secret, the way the rconn
// controller renders its outputs: rconn.secretKeys lists the keys of secret material that
// secret holds (under cfg's rconn.secretFiles names), rconn.secretToken and secret's
// SecretKeyToken are token, and secret's SecretKeyConfigDigest is ConfigDigest of the returned
// bytes. cfg and secret are modified. Tools and tests that write outputs themselves use it
// instead of writing digests by hand.
func BindSecret(cfg *Config, secret map[string][]byte, token string) ([]byte, error) {
	f := cfg.Rconn.SecretFiles.withDefaults()
	keys := []string{} // present even when empty: "no secret material configured"
	for _, k := range f.names() {
		if _, ok := secret[k]; ok {
			keys = append(keys, k)
		}
	}
	cfg.Rconn.SecretKeys, cfg.Rconn.SecretToken = keys, token
	raw, err := Render(cfg)
	if err != nil {
		return nil, err
	}
	secret[SecretKeyToken] = []byte(token)
	secret[SecretKeyConfigDigest] = []byte(ConfigDigest(raw))
	return raw, nil
}

// bound checks that the Secret carries config.json's digest. A mismatch while the two tokens
// differ is the kubelet (or a watch) delivering one object of a re-rendered pair before the
// other: ErrSecretPending, unless force (the wait is over), when it is ErrConfigNotBound like
// every other mismatch. The controller draws a new token whenever config.json or the Secret
// changes, so a config.json that names the Secret's own token yet has another digest was
// changed after rendering.
func bound(raw []byte, cfg *Config, secret map[string][]byte, force bool) error {
	have := string(bytes.TrimSpace(secret[SecretKeyConfigDigest]))
	if have == ConfigDigest(raw) {
		return nil
	}
	token := string(bytes.TrimSpace(secret[SecretKeyToken]))
	switch {
	case have == "":
		return invalid(fmt.Errorf("rconn: %w: the Secret has no %s key (written by hand, or not by an rconn controller): refusing config.json, whose node address map could send the credentials anywhere", ErrConfigNotBound, SecretKeyConfigDigest))
	case cfg.Rconn.SecretToken != token && !force:
		return fmt.Errorf("rconn: %w: config.json names Secret token %s, the Secret has %s (and a %s for another config.json)", ErrSecretPending, orNone(cfg.Rconn.SecretToken), orNone(token), SecretKeyConfigDigest)
	case cfg.Rconn.SecretToken != token:
		return invalid(fmt.Errorf("rconn: %w: the Secret's %s is not the SHA-256 of config.json, and no Secret that matches it arrived: refusing config.json", ErrConfigNotBound, SecretKeyConfigDigest))
	}
	return invalid(fmt.Errorf("rconn: %w: config.json names the Secret's token but is not the file rendered with it (the Secret's %s is not its SHA-256): it was edited after the controller rendered it; refusing it, its node address map could send the credentials anywhere", ErrConfigNotBound, SecretKeyConfigDigest))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// logNotBound logs a rejection for ErrConfigNotBound: unlike other reload failures it is a
// sign of tampering with the ConfigMap, which the cluster's operators should see even when the
// app does not log its client's events.
func logNotBound(err error) {
	if errors.Is(err, ErrConfigNotBound) {
		slog.Default().Error("rconn: refusing a config.json that its Secret does not bind", "error", err.Error())
	}
}
