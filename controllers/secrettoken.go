package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// The rendered config.json and Secret are a pair: pkg/client applies a config.json only with
// the Secret it was rendered with. Both carry a generation token (config.json
// rconn.secretToken, the Secret's pkgclient.SecretKeyToken key), config.json lists the keys of
// secret material the Secret holds (rconn.secretKeys), so a removed username or client
// certificate is an update, not a file that vanished, and the Secret carries the SHA-256 of the
// exact config.json (pkgclient.SecretKeyConfigDigest): a config.json edited in the ConfigMap
// is refused, so ConfigMap edit rights alone cannot steer where the credentials go
// (pkgclient.BindSecret, docs/security.md).
//
// The token is random, drawn anew whenever the Secret's material or config.json (apart from
// the token) changes, and reused while neither does (from the memo, or from the Secret itself
// after a restart), so a steady state writes nothing. A new token for every new config.json is
// what lets a client tell a pair delivered half-way (tokens differ: wait) from an edited
// config.json (same token, other digest: refuse). A hash of the Secret's content would do
// without state, but config.json is readable by everyone who may read the ConfigMap, and a
// hash of a low-entropy password is a guessing oracle; a random token tells them nothing.
// The digest is of config.json, which those readers have anyway.

// bindOutputs draws (or reuses) the token for this pair and renders config.json bound to
// secretData (pkgclient.BindSecret: secret keys, token, digest). secretData holds the material
// and Service Binding keys, not yet the token or the digest.
func (r *RedisConnectionReconciler) bindOutputs(ctx context.Context, rc *rconnv1.RedisConnection, secName string, cfg *pkgclient.Config, secretData map[string][]byte) ([]byte, error) {
	token, err := r.secretToken(ctx, rc, secName, cfg, secretData)
	if err != nil {
		return nil, err
	}
	raw, err := pkgclient.BindSecret(cfg, secretData, token)
	if err != nil {
		return nil, fmt.Errorf("rendering config.json: %w", err)
	}
	return raw, nil
}

// boundCopy is config.json as BindSecret renders it for token, leaving cfg and secretData as
// they are.
func boundCopy(cfg *pkgclient.Config, secretData map[string][]byte, token string) ([]byte, error) {
	c := *cfg
	return pkgclient.BindSecret(&c, maps.Clone(secretData), token)
}

// secretToken returns the token for this pair: the one in use when neither the Secret's
// material nor config.json without the token changed, else a new one.
func (r *RedisConnectionReconciler) secretToken(ctx context.Context, rc *rconnv1.RedisConnection, secName string, cfg *pkgclient.Config, secretData map[string][]byte) (string, error) {
	unbound, err := boundCopy(cfg, secretData, "")
	if err != nil {
		return "", fmt.Errorf("rendering config.json: %w", err)
	}
	contentHash := hashData(map[string]string{pkgclient.ConfigFileName: string(unbound)}, secretData)
	key := client.ObjectKeyFromObject(rc)
	if t, ok := r.outputs.token(key, contentHash); ok {
		return t, nil
	}
	token := ""
	sec := &corev1.Secret{}
	err = r.APIReader.Get(ctx, client.ObjectKey{Namespace: rc.Namespace, Name: secName}, sec)
	switch {
	case err == nil && metav1.IsControlledBy(sec, rc):
		token = reusableToken(sec.Data, cfg, secretData)
	case err != nil && !apierrors.IsNotFound(err):
		return "", fmt.Errorf("reading Secret %s: %w", secName, err)
	}
	if token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		token = hex.EncodeToString(b)
	}
	r.outputs.setToken(key, contentHash, token)
	return token, nil
}

// reusableToken is the token of the Secret there (have) when it holds this material and is
// bound to the config.json this token would render: a restarted controller then writes nothing.
func reusableToken(have map[string][]byte, cfg *pkgclient.Config, secretData map[string][]byte) string {
	token := string(have[pkgclient.SecretKeyToken])
	if token == "" {
		return ""
	}
	material := maps.Clone(have)
	delete(material, pkgclient.SecretKeyToken)
	delete(material, pkgclient.SecretKeyConfigDigest)
	if hashData(nil, material) != hashData(nil, secretData) {
		return ""
	}
	raw, err := boundCopy(cfg, secretData, token)
	if err != nil || string(have[pkgclient.SecretKeyConfigDigest]) != pkgclient.ConfigDigest(raw) {
		return ""
	}
	return token
}

type tokenState struct{ contentHash, token string }

func (o *outputMemo) token(key types.NamespacedName, contentHash string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.tokens[key]
	return t.token, ok && t.contentHash == contentHash
}

func (o *outputMemo) setToken(key types.NamespacedName, contentHash, token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tokens == nil {
		o.tokens = map[types.NamespacedName]tokenState{}
	}
	o.tokens[key] = tokenState{contentHash, token}
}
