package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// credentials are the resolved ACL and TLS material of a RedisConnection.
type credentials struct {
	// username and password are rendered for apps (spec.defaults.acl).
	username, password string
	hasPassword        bool
	// ctrlUsername and ctrlPassword are what the controller connects with (spec.controllerACL,
	// else the same as username and password).
	ctrlUsername, ctrlPassword string
	tls                        *rtls.Material
	// expiry is the earliest certificate expiry (zero without certificates).
	expiry time.Time
	// sentinel: the sentinels' own credentials (Sentinel mode only; credentials_sentinel.go).
	sentinel *sentinelCredentials
}

// credentialError is a CredentialsResolved=False reason with its message.
type credentialError struct {
	reason, message string
}

func (e *credentialError) Error() string { return e.message }

func credErr(reason, format string, args ...any) error {
	return &credentialError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// resolveCredentials reads the ACL and TLS Secrets (same namespace only: the references have no
// namespace field) and validates their content. Secrets are read directly from the API server
// rather than from a cache of every Secret in the cluster.
func (r *RedisConnectionReconciler) resolveCredentials(ctx context.Context, rc *rconnv1.RedisConnection) (*credentials, error) {
	c := &credentials{}
	d := rc.Spec.Defaults
	if d != nil && d.ACL != nil {
		var err error
		if c.username, c.password, err = r.readACL(ctx, rc.Namespace, d.ACL, "spec.defaults.acl"); err != nil {
			return nil, err
		}
		c.hasPassword = true
	}
	c.ctrlUsername, c.ctrlPassword = c.username, c.password
	if a := rc.Spec.ControllerACL; a != nil {
		var err error
		if c.ctrlUsername, c.ctrlPassword, err = r.readACL(ctx, rc.Namespace, a, "spec.controllerACL"); err != nil {
			return nil, err
		}
	}
	if err := r.resolveSentinelCredentials(ctx, rc, c); err != nil {
		return nil, err
	}
	if d == nil {
		return c, nil
	}
	if d.TLS != nil && d.TLS.Enabled && d.TLS.SecretRef != nil {
		m, expiry, err := r.readTLSMaterial(ctx, rc.Namespace, d.TLS.SecretRef.Name)
		if err != nil {
			return nil, err
		}
		c.tls = m
		if c.expiry.IsZero() || (!expiry.IsZero() && expiry.Before(c.expiry)) {
			c.expiry = expiry
		}
	}
	return c, nil
}

// readACL reads an ACL username (optional) and password from a Secret; field names the spec
// field in messages.
func (r *RedisConnectionReconciler) readACL(ctx context.Context, ns string, acl *rconnv1.ACLCredentials, field string) (username, password string, err error) {
	sec, err := r.readSecret(ctx, ns, acl.SecretRef.Name)
	if err != nil {
		if ce, ok := asCredentialError(err); ok {
			return "", "", credErr(ce.reason, "%s (%s)", ce.message, field)
		}
		return "", "", err
	}
	key := acl.PasswordKey
	if key == "" {
		key = pkgclient.SecretKeyPassword
	}
	pw, ok := sec.Data[key]
	if !ok {
		return "", "", credErr(rconnv1.ReasonSecretKeyMissing, "Secret %s has no key %q (%s.passwordKey)", sec.Name, key, field)
	}
	if acl.UsernameKey != "" {
		u, ok := sec.Data[acl.UsernameKey]
		if !ok {
			return "", "", credErr(rconnv1.ReasonSecretKeyMissing, "Secret %s has no key %q (%s.usernameKey)", sec.Name, acl.UsernameKey, field)
		}
		username = string(u)
	}
	return username, string(pw), nil
}

// readSecret returns a Secret's content. Content is read from the API server (the cache holds
// Secret metadata only), but only when the cached metadata shows a resourceVersion other than
// the one read last: at steady state credentials cost no API request, and a rotation (a new
// resourceVersion, whose watch event also triggers the reconcile) is always read.
func (r *RedisConnectionReconciler) readSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, key, meta); err == nil {
		if sec := r.secrets.get(key); sec != nil && sec.ResourceVersion == meta.ResourceVersion {
			return sec, nil
		}
	}
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, sec); err != nil {
		if apierrors.IsNotFound(err) {
			r.secrets.drop(key)
			return nil, credErr(rconnv1.ReasonSecretNotFound, "Secret %s not found in namespace %s", name, ns)
		}
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	r.secrets.put(key, sec)
	return sec, nil
}

// secretMemo keeps the last read content of the Secrets RedisConnections reference, by name.
// Entries are read-only once stored. It holds only Secrets some RedisConnection references
// now: use records each RedisConnection's references after it resolved them, and a Secret no
// RedisConnection references any more is dropped with its last reference (release on delete).
type secretMemo struct {
	mu    sync.Mutex
	m     map[types.NamespacedName]*corev1.Secret
	refs  map[types.NamespacedName][]types.NamespacedName // RedisConnection -> Secrets
	count map[types.NamespacedName]int                    // Secret -> references
}

// use records the Secrets a RedisConnection references now and drops memo entries no
// RedisConnection references any more.
func (s *secretMemo) use(rc types.NamespacedName, secrets []types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == nil {
		s.refs = map[types.NamespacedName][]types.NamespacedName{}
		s.count = map[types.NamespacedName]int{}
	}
	for _, sec := range secrets {
		s.count[sec]++
	}
	for _, sec := range s.refs[rc] {
		if s.count[sec]--; s.count[sec] <= 0 {
			delete(s.count, sec)
			delete(s.m, sec)
		}
	}
	if len(secrets) == 0 {
		delete(s.refs, rc)
	} else {
		s.refs[rc] = secrets
	}
}

// release forgets a deleted RedisConnection's references.
func (s *secretMemo) release(rc types.NamespacedName) {
	s.use(rc, nil)
}

// size returns how many Secrets are memoized.
func (s *secretMemo) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// secretRefs lists the Secrets a RedisConnection references (RedisConnectionBySecretRef).
func secretRefs(rc *rconnv1.RedisConnection) []string {
	var out []string
	if rc.Spec.ControllerACL != nil {
		out = append(out, rc.Spec.ControllerACL.SecretRef.Name)
	}
	if d := rc.Spec.Defaults; d != nil {
		if d.ACL != nil {
			out = append(out, d.ACL.SecretRef.Name)
		}
		if d.TLS != nil && d.TLS.SecretRef != nil {
			out = append(out, d.TLS.SecretRef.Name)
		}
	}
	// Sentinel mode: the sentinels' own ACL and TLS Secrets are watched and memoised like the
	// data nodes' (a rotated sentinel password must re-render too).
	if sn := rc.Spec.Sentinel; sn != nil {
		if sn.ACL != nil {
			out = append(out, sn.ACL.SecretRef.Name)
		}
		if sn.TLS != nil && sn.TLS.SecretRef != nil {
			out = append(out, sn.TLS.SecretRef.Name)
		}
	}
	return out
}

func (s *secretMemo) get(key types.NamespacedName) *corev1.Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

func (s *secretMemo) put(key types.NamespacedName, sec *corev1.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count[key] <= 0 {
		return // referenced by no RedisConnection (any more): nothing to keep
	}
	if s.m == nil {
		s.m = map[types.NamespacedName]*corev1.Secret{}
	}
	s.m[key] = sec
}

func (s *secretMemo) drop(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// tlsReason maps pkg/tls reasons onto condition reasons.
func tlsReason(err error) string {
	switch rtls.ReasonOf(err) {
	case rtls.ReasonCertificateExpired:
		return rconnv1.ReasonCertificateExpired
	case rtls.ReasonCertificateNotYetValid:
		return rconnv1.ReasonCertificateNotYetValid
	case rtls.ReasonKeyMismatch:
		return rconnv1.ReasonKeyMismatch
	default:
		return rconnv1.ReasonInvalidCertificate
	}
}

func asCredentialError(err error) (*credentialError, bool) {
	var ce *credentialError
	ok := errors.As(err, &ce)
	return ce, ok
}
