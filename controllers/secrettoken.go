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
// rconn.secretToken, the Secret's pkgclient.SecretKeyToken key), and config.json lists the
// keys of secret material the Secret holds (rconn.secretKeys), so a removed username or client
// certificate is an update, not a file that vanished.
//
// The token is random, drawn anew whenever the Secret's content changes, and reused while it
// does not (from the memo, or from the Secret itself after a restart), so a steady state
// writes nothing. A hash of the Secret's content would do the same without state, but
// config.json is readable by everyone who may read the ConfigMap, and a hash of a low-entropy
// password is a guessing oracle; a random token tells them nothing.

// pairOutputs writes the token into both outputs and the present secret keys into config.json.
func pairOutputs(cfg *pkgclient.Config, secretData map[string][]byte, token string) {
	var keys []string
	for _, k := range []string{pkgclient.SecretKeyUsername, pkgclient.SecretKeyPassword, pkgclient.SecretKeyCA, pkgclient.SecretKeyCert, pkgclient.SecretKeyKey} {
		if _, ok := secretData[k]; ok {
			keys = append(keys, k)
		}
	}
	cfg.Rconn.SecretKeys = append([]string{}, keys...) // present even when empty: "none configured"
	cfg.Rconn.SecretToken = token
	secretData[pkgclient.SecretKeyToken] = []byte(token)
}

// secretToken returns the token for Secret content whose hash (without the token) is
// contentHash: the one in use when the content is unchanged, else a new one.
func (r *RedisConnectionReconciler) secretToken(ctx context.Context, rc *rconnv1.RedisConnection, secName, contentHash string) (string, error) {
	key := client.ObjectKeyFromObject(rc)
	if t, ok := r.outputs.token(key, contentHash); ok {
		return t, nil
	}
	token := ""
	sec := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: rc.Namespace, Name: secName}, sec)
	switch {
	case err == nil && metav1.IsControlledBy(sec, rc):
		data := maps.Clone(sec.Data)
		have := string(data[pkgclient.SecretKeyToken])
		delete(data, pkgclient.SecretKeyToken)
		if have != "" && hashData(nil, data) == contentHash {
			token = have
		}
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
