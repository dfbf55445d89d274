package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// sentinelCredentials are the sentinels' own ACL and TLS material (spec.sentinel.acl/tls):
// Sentinel auth is separate from the data nodes' (Bitnami sets both), so nothing here falls
// back to spec.defaults.
type sentinelCredentials struct {
	username, password string
	hasPassword        bool
	tls                *rtls.Material
}

// resolveSentinelCredentials reads spec.sentinel's Secrets into c.sentinel (nil outside
// Sentinel mode) and lowers c.expiry to the earliest sentinel certificate expiry.
func (r *RedisConnectionReconciler) resolveSentinelCredentials(ctx context.Context, rc *rconnv1.RedisConnection, c *credentials) error {
	sn := rc.Spec.Sentinel
	if sn == nil {
		return nil
	}
	sc := &sentinelCredentials{}
	if sn.ACL != nil {
		var err error
		if sc.username, sc.password, err = r.readACL(ctx, rc.Namespace, sn.ACL, "spec.sentinel.acl"); err != nil {
			return err
		}
		sc.hasPassword = true
	}
	if t := sn.TLS; t != nil && t.Enabled && t.SecretRef != nil {
		m, expiry, err := r.readTLSMaterial(ctx, rc.Namespace, t.SecretRef.Name)
		if err != nil {
			return err
		}
		sc.tls = m
		if c.expiry.IsZero() || (!expiry.IsZero() && expiry.Before(c.expiry)) {
			c.expiry = expiry
		}
	}
	c.sentinel = sc
	return nil
}

// readTLSMaterial reads and validates a TLS Secret (ca.crt, tls.crt, tls.key) as
// spec.defaults.tls's is.
func (r *RedisConnectionReconciler) readTLSMaterial(ctx context.Context, ns, name string) (*rtls.Material, time.Time, error) {
	sec, err := r.readSecret(ctx, ns, name)
	if err != nil {
		return nil, time.Time{}, err
	}
	m := &rtls.Material{CA: sec.Data[corev1.ServiceAccountRootCAKey], Cert: sec.Data[corev1.TLSCertKey], Key: sec.Data[corev1.TLSPrivateKeyKey]}
	if len(m.CA) == 0 && len(m.Cert) == 0 {
		return nil, time.Time{}, credErr(rconnv1.ReasonSecretKeyMissing, "Secret %s has neither ca.crt nor tls.crt", sec.Name)
	}
	report, err := rtls.Validate(m, r.now())
	switch {
	case rtls.ReasonOf(err) == rtls.ReasonIncompleteKeyPair:
		return nil, time.Time{}, credErr(rconnv1.ReasonSecretKeyMissing, "Secret %s: %v (tls.crt and tls.key go together)", sec.Name, err)
	case err != nil:
		return nil, time.Time{}, credErr(tlsReason(err), "Secret %s: %v", sec.Name, err)
	}
	return m, report.Expiry, nil
}
