package controllers

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// addressMap is the node address map as resolved from the spec and the cluster's Services.
type addressMap struct {
	// entries by announced address, sorted when listed.
	entries map[string]rconnv1.AppliedAddressMapping
	// problems found (conflicts, pending load balancers, ...): never guessed around.
	problems []mapProblem
}

type mapProblem struct {
	reason, message string
}

func (m *addressMap) problem(reason, format string, args ...any) {
	m.problems = append(m.problems, mapProblem{reason: reason, message: fmt.Sprintf(format, args...)})
}

// list returns the entries ordered by announced address.
func (m *addressMap) list() []rconnv1.AppliedAddressMapping {
	out := make([]rconnv1.AppliedAddressMapping, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Announced < out[b].Announced })
	return out
}

// buildAddressMap resolves spec.nodeAddressMap: static entries, then every endpoint of the
// selected Services. Static wins; two different dynamic targets for one key are a conflict
// (reported, and the key left out).
func (r *RedisConnectionReconciler) buildAddressMap(ctx context.Context, rc *rconnv1.RedisConnection) (*addressMap, error) {
	m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
	spec := rc.Spec.NodeAddressMap
	if spec == nil {
		return m, nil
	}
	static := map[string]bool{}
	for _, s := range spec.Static {
		m.entries[string(s.Announced)] = rconnv1.AppliedAddressMapping{Announced: string(s.Announced), Reachable: string(s.Reachable), Source: rconnv1.MappingSourceStatic}
		static[string(s.Announced)] = true
	}
	conflicts := map[string]bool{}
	for i, src := range spec.FromServices {
		sel, err := metav1.LabelSelectorAsSelector(&src.Selector)
		if err != nil {
			m.problem(rconnv1.ReasonNoServices, "fromServices[%d]: bad selector: %v", i, err)
			continue
		}
		var svcs corev1.ServiceList
		if err := r.List(ctx, &svcs, client.InNamespace(rc.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, fmt.Errorf("listing Services: %w", err)
		}
		if len(svcs.Items) == 0 {
			m.problem(rconnv1.ReasonNoServices, "fromServices[%d]: no Service in namespace %s matches %s", i, rc.Namespace, sel)
			continue
		}
		sort.Slice(svcs.Items, func(a, b int) bool { return svcs.Items[a].Name < svcs.Items[b].Name })
		for si := range svcs.Items {
			svc := &svcs.Items[si]
			found, err := r.serviceMappings(ctx, svc, src, m)
			if err != nil {
				return nil, err
			}
			for _, e := range found {
				if static[e.Announced] || conflicts[e.Announced] {
					continue
				}
				if prev, ok := m.entries[e.Announced]; ok && prev.Reachable != e.Reachable {
					m.problem(rconnv1.ReasonMappingConflict, "%s maps to both %s (Service %s) and %s (Service %s)", e.Announced, prev.Reachable, prev.Service, e.Reachable, e.Service)
					conflicts[e.Announced] = true
					delete(m.entries, e.Announced)
					continue
				}
				m.entries[e.Announced] = e
			}
		}
	}
	return m, nil
}

// servicePort picks the Service port named by the source: by name or number, else "redis",
// else the only port.
func servicePort(svc *corev1.Service, want *intstr.IntOrString) (*corev1.ServicePort, bool) {
	ports := svc.Spec.Ports
	if want != nil {
		for i := range ports {
			if (want.Type == intstr.String && ports[i].Name == want.StrVal) || (want.Type == intstr.Int && ports[i].Port == want.IntVal) {
				return &ports[i], true
			}
		}
		return nil, false
	}
	for i := range ports {
		if ports[i].Name == "redis" {
			return &ports[i], true
		}
	}
	if len(ports) == 1 {
		return &ports[0], true
	}
	return nil, false
}

// endpointServing says whether an endpoint can take traffic: serving (ready or terminating
// but still serving), else ready; a slice that says neither is taken as ready.
func endpointServing(ep discoveryv1.Endpoint) bool {
	if ep.Conditions.Serving != nil {
		return *ep.Conditions.Serving
	}
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// serviceMappings returns announced -> reachable entries for one Service's endpoints (all of
// them: ready, not ready and terminating).
func (r *RedisConnectionReconciler) serviceMappings(ctx context.Context, svc *corev1.Service, src rconnv1.ServiceAddressSource, m *addressMap) ([]rconnv1.AppliedAddressMapping, error) {
	sp, ok := servicePort(svc, src.Port)
	if !ok {
		m.problem(rconnv1.ReasonServicePortNotFound, "Service %s has no port %s (set fromServices[].port, or name the port \"redis\")", svc.Name, portDesc(src.Port))
		return nil, nil
	}
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, fmt.Errorf("listing EndpointSlices of Service %s: %w", svc.Name, err)
	}
	sort.Slice(slices.Items, func(a, b int) bool { return slices.Items[a].Name < slices.Items[b].Name })

	// The reachable host for Service-wide address types.
	var svcHost string
	switch src.AddressType {
	case rconnv1.AddressTypeClusterIP:
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			m.problem(rconnv1.ReasonNodeAddressUnknown, "Service %s is headless: ClusterIP mapping needs one ClusterIP Service per node (use PodDNS for headless Services)", svc.Name)
			return nil, nil
		}
		svcHost = svc.Spec.ClusterIP
	case rconnv1.AddressTypeLoadBalancer:
		ing := svc.Status.LoadBalancer.Ingress
		if len(ing) == 0 || (ing[0].IP == "" && ing[0].Hostname == "") {
			m.problem(rconnv1.ReasonLoadBalancerPending, "Service %s has no load balancer ingress yet", svc.Name)
			return nil, nil
		}
		svcHost = ing[0].IP
		if svcHost == "" {
			svcHost = ing[0].Hostname
		}
	case rconnv1.AddressTypeNodePort:
		if sp.NodePort == 0 {
			m.problem(rconnv1.ReasonNodeAddressUnknown, "Service %s port %s has no nodePort (type %s)", svc.Name, sp.Name, svc.Spec.Type)
			return nil, nil
		}
	}

	var out []rconnv1.AppliedAddressMapping
	ready := 0
	for _, es := range slices.Items {
		var target int32
		found := false
		for _, p := range es.Ports {
			if p.Port != nil && ptrStr(p.Name) == sp.Name {
				target, found = *p.Port, true
			}
		}
		if !found {
			continue
		}
		for _, ep := range es.Endpoints {
			// Every endpoint listed is mapped, whatever its conditions: the endpointslice
			// controller lists a pod for as long as it exists with that IP, and a node that is
			// not ready (failing its probe) or terminating (still serving in its grace period)
			// is still announced by the cluster and may still answer. Dropping its entry would
			// only turn a reachable node into an unmapped one. Readiness is reported by the
			// health checks, not by the map. (docs/api.md, "Which endpoints are mapped")
			if endpointServing(ep) {
				ready++
			}
			var reachable string
			switch src.AddressType {
			case rconnv1.AddressTypePodDNS:
				if ep.Hostname == nil || *ep.Hostname == "" {
					m.problem(rconnv1.ReasonNodeAddressUnknown, "an endpoint of Service %s has no hostname: PodDNS needs a headless Service of a StatefulSet", svc.Name)
					continue
				}
				host := fmt.Sprintf("%s.%s.%s.svc.%s", *ep.Hostname, svc.Name, svc.Namespace, r.clusterDomain())
				reachable = net.JoinHostPort(host, strconv.Itoa(int(target)))
			case rconnv1.AddressTypeClusterIP, rconnv1.AddressTypeLoadBalancer:
				reachable = net.JoinHostPort(svcHost, strconv.Itoa(int(sp.Port)))
			case rconnv1.AddressTypeNodePort:
				host, err := r.nodeAddress(ctx, ep.NodeName)
				if err != nil {
					return nil, err
				}
				if host == "" {
					m.problem(rconnv1.ReasonNodeAddressUnknown, "an endpoint of Service %s is on node %q, which has no ExternalIP or InternalIP", svc.Name, ptrStr(ep.NodeName))
					continue
				}
				reachable = net.JoinHostPort(host, strconv.Itoa(int(sp.NodePort)))
			}
			for _, a := range ep.Addresses {
				out = append(out, rconnv1.AppliedAddressMapping{
					Announced: net.JoinHostPort(a, strconv.Itoa(int(target))),
					Reachable: reachable,
					Source:    rconnv1.MappingSourceService,
					Service:   svc.Name,
				})
			}
		}
	}
	if ready == 0 {
		m.problem(rconnv1.ReasonNoEndpoints, "Service %s has no serving endpoints on port %s", svc.Name, sp.Name)
	}
	return out, nil
}

// nodeAddressCache remembers Node addresses for NodePort mappings for nodeAddressTTL, so a
// thousand NodePort endpoints cost one Node read per node per TTL instead of one per endpoint
// per reconcile. Bounded (LRU) by nodeAddressCacheSize Nodes. Nodes are not watched (no cache
// of every Node in the cluster): only NodePort mappings need them.
type nodeAddressCache struct {
	once sync.Once
	c    *utilcache.LRUExpireCache
}

const (
	nodeAddressTTL       = 10 * time.Second
	nodeAddressCacheSize = 5000
)

func (n *nodeAddressCache) get(name string) (string, bool) {
	n.once.Do(func() { n.c = utilcache.NewLRUExpireCache(nodeAddressCacheSize) })
	v, ok := n.c.Get(name)
	if !ok {
		return "", false
	}
	return v.(string), true
}

func (n *nodeAddressCache) put(name, addr string) {
	n.once.Do(func() { n.c = utilcache.NewLRUExpireCache(nodeAddressCacheSize) })
	n.c.Add(name, addr, nodeAddressTTL)
}

// nodeAddress returns a Node's ExternalIP, else its InternalIP.
func (r *RedisConnectionReconciler) nodeAddress(ctx context.Context, name *string) (string, error) {
	if name == nil || *name == "" {
		return "", nil
	}
	if addr, ok := r.nodes.get(*name); ok {
		return addr, nil
	}
	addr, err := r.readNodeAddress(ctx, *name)
	if err == nil {
		r.nodes.put(*name, addr)
	}
	return addr, err
}

func (r *RedisConnectionReconciler) readNodeAddress(ctx context.Context, name string) (string, error) {
	node := &corev1.Node{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	var internal string
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeExternalIP:
			return a.Address, nil
		case corev1.NodeInternalIP:
			if internal == "" {
				internal = a.Address
			}
		}
	}
	return internal, nil
}

func (r *RedisConnectionReconciler) clusterDomain() string {
	if r.ClusterDomain == "" {
		return "cluster.local"
	}
	return strings.TrimSuffix(r.ClusterDomain, ".")
}

func portDesc(p *intstr.IntOrString) string {
	if p == nil {
		return `"redis"`
	}
	return p.String()
}

func ptrStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// serviceSelectors returns the label selectors of every fromServices source.
func serviceSelectors(rc *rconnv1.RedisConnection) []labels.Selector {
	if rc.Spec.NodeAddressMap == nil {
		return nil
	}
	var out []labels.Selector
	for _, src := range rc.Spec.NodeAddressMap.FromServices {
		if sel, err := metav1.LabelSelectorAsSelector(&src.Selector); err == nil {
			out = append(out, sel)
		}
	}
	return out
}
