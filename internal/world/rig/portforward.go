package rig

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Port-forward on the rig (Options.PortForward). kube-apiserver serves pods/portforward by
// dialing the "kubelet" of the pod's node at the node's InternalIP (the API server is told to
// prefer it: the default prefers Hostname, which would be a DNS query) and its
// daemonEndpoints port. kwok's own server plays that kubelet: it listens on 127.0.0.1 (every
// node's InternalIP then, so nothing but loopback carries it), and serves a port-forward to a
// pod as its PortForward object (kwok.x-k8s.io/v1alpha1, watched with --enable-crds) says:
// ForwardPod points it at the pod's IP in the pod network.

// kwokPortForwardCRD is kwok's PortForward CRD, reduced to what kwok reads (its module's
// kustomize/crd/bases/kwok.x-k8s.io_portforwards.yaml has the full schema).
func kwokPortForwardCRD() *apiextensionsv1.CustomResourceDefinition {
	preserve := true
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "portforwards.kwok.x-k8s.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "kwok.x-k8s.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "portforwards", Singular: "portforward", Kind: "PortForward", ListKind: "PortForwardList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema:       &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &preserve}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

func (r *Rig) installPortForwardCRD() error {
	_, err := envtest.InstallCRDs(r.Config, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{kwokPortForwardCRD()}})
	return err
}

// kubeletPort picks the port kwok's server listens on (127.0.0.1).
func kubeletPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ForwardPod makes kwok serve port-forwards to port of pod ns/name by dialing the pod's IP in
// the pod network. Needs Options.PortForward.
func (r *Rig) ForwardPod(ctx context.Context, ns, name string, port int) error {
	if !r.opts.PortForward {
		return fmt.Errorf("rig: ForwardPod needs Options.PortForward")
	}
	ip, err := r.podIP(ctx, ns, name)
	if err != nil {
		return err
	}
	pf := &unstructured.Unstructured{}
	pf.SetGroupVersionKind(schema.GroupVersionKind{Group: "kwok.x-k8s.io", Version: "v1alpha1", Kind: "PortForward"})
	pf.SetNamespace(ns)
	pf.SetName(name)
	pf.Object["spec"] = map[string]any{"forwards": []any{map[string]any{
		"ports":  []any{int64(port)},
		"target": map[string]any{"port": int64(port), "address": ip},
	}}}
	if err := r.Client.Create(ctx, pf); err != nil {
		return fmt.Errorf("rig: PortForward %s/%s -> %s:%s: %w", ns, name, ip, strconv.Itoa(port), err)
	}
	return nil
}

func (r *Rig) podIP(ctx context.Context, ns, name string) (string, error) {
	var p corev1.Pod
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return "", err
	}
	if p.Status.PodIP == "" {
		return "", fmt.Errorf("rig: pod %s/%s has no IP yet", ns, name)
	}
	return p.Status.PodIP, nil
}
