package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// The admission policy, as a deployment has it: config/default installs the secret-references
// ValidatingAdmissionPolicy and its binding (docs/security.md#admission), and so do the demo and
// the worlds the e2e tests run in. ShowDenial is the attack the policy stops, made as a tenant
// through kubectl --as.

const (
	// TenantUser may do anything to RedisConnections in the demo namespace, and get only the
	// Secret TenantSecret there (ShowDenial's Role).
	TenantUser = "tenant"
	// TenantSecret is the Secret TenantUser may read: the output they try to read ProdSecret
	// through.
	TenantSecret = "app-out"
	// ProdSecret is a Secret TenantUser may not read.
	ProdSecret = "prod-db"
)

// KubectlFunc runs kubectl as an admin (World.Kubectl, RigWorld.Kubectl).
type KubectlFunc func(ctx context.Context, args ...string) (string, error)

// InstallAdmission applies the ValidatingAdmissionPolicy and binding exactly as config/default
// renders them (kubectl kustomize: rconn-secret-references), and nothing else of it.
func InstallAdmission(ctx context.Context, kubectl KubectlFunc, root, dir string) error {
	rendered, err := kubectl(ctx, "kustomize", filepath.Join(root, "config", "default"))
	if err != nil {
		return err
	}
	var docs []string
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return fmt.Errorf("kubectl kustomize config/default: %w", err)
		}
		if strings.HasPrefix(tm.APIVersion, "admissionregistration.k8s.io/") {
			docs = append(docs, doc)
		}
	}
	if len(docs) != 2 {
		return fmt.Errorf("config/default renders %d admissionregistration objects, want the policy and its binding", len(docs))
	}
	p := filepath.Join(dir, "admission.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		return err
	}
	_, err = kubectl(ctx, "apply", "--server-side", "--field-manager=rconn-demo", "-f", p)
	return err
}

// ShowDenial sets up the confused-deputy attack of docs/security.md in namespace ns and makes
// it: Secrets ProdSecret and TenantSecret, a Role that lets TenantUser do anything to
// RedisConnections and get only TenantSecret, and, as TenantUser (kubectl --as), a
// RedisConnection that names ProdSecret as its ACL Secret and TenantSecret as its output. It
// returns the API server's denial once the policy enforces it (a policy is picked up
// asynchronously after it is created; until then an admitted object is deleted and the request
// repeated). An error when it is still admitted when ctx ends.
func ShowDenial(ctx context.Context, kubectl KubectlFunc, ns, dir string) (string, error) {
	if err := tenantSetup(ctx, kubectl, ns); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "tenant-attack.yaml")
	rc := fmt.Sprintf(`apiVersion: rconn.dev/v1
kind: RedisConnection
metadata: {name: steal, namespace: %s}
spec:
  rootNodes: [{url: "redis://127.0.0.1:6379"}]
  defaults: {acl: {secretRef: {name: %s}}}
  output: {secretName: %s}
`, ns, ProdSecret, TenantSecret)
	if err := os.WriteFile(p, []byte(rc), 0o644); err != nil {
		return "", err
	}
	for {
		out, err := kubectl(ctx, "--as", TenantUser, "create", "-f", p)
		if err != nil && strings.Contains(out, "may not get Secret "+ProdSecret) {
			return strings.TrimSpace(out), nil
		}
		if err == nil {
			if _, err := kubectl(ctx, "delete", "-n", ns, "redisconnection", "steal", "--wait=false"); err != nil {
				return "", err
			}
		} else if !strings.Contains(out, "AlreadyExists") {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", errors.New("the tenant's RedisConnection naming " + ProdSecret + " was admitted: the admission policy is not enforced")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tenantSetup creates the two Secrets and TenantUser's Role and RoleBinding (idempotent).
func tenantSetup(ctx context.Context, kubectl KubectlFunc, ns string) error {
	for _, args := range [][]string{
		{"create", "secret", "generic", ProdSecret, "--from-literal=username=prod", "--from-literal=password=not-for-tenants"},
		{"create", "secret", "generic", TenantSecret},
		{"create", "role", TenantUser, "--verb=*", "--resource=redisconnections.rconn.dev"},
		{"create", "rolebinding", TenantUser, "--role=" + TenantUser, "--user=" + TenantUser},
	} {
		if out, err := kubectl(ctx, append([]string{"-n", ns}, args...)...); err != nil && !strings.Contains(out, "AlreadyExists") {
			return err
		}
	}
	// kubectl create role cannot mix resources with and without resourceNames: one more rule.
	_, err := kubectl(ctx, "-n", ns, "patch", "role", TenantUser, "--type=json", "-p",
		`[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"resourceNames":["`+TenantSecret+`"],"verbs":["get"]}}]`)
	return err
}

// Kubectl returns a KubectlFunc that runs the kubectl of the envtest assets directory (or the
// one on PATH) with kubeconfig, in dir.
func Kubectl(assets, kubeconfig, dir string) KubectlFunc {
	return func(ctx context.Context, args ...string) (string, error) {
		return kubectlAt(ctx, assets, kubeconfig, dir, args...)
	}
}
