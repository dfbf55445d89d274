package controllers

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// addressMap is the node address map as resolved from the spec and the cluster's Services.
type addressMap struct {
	// entries by announced address, sorted when listed.
	entries map[string]rconnv1.AppliedAddressMapping
	// problems found (conflicts, pending load balancers, ...), each about its own entries: the
	// rest of the map is used and rendered. At most maxMapProblems are kept; more counts the rest.
	problems []mapProblem
	more     int
	// retryAfter, when set, asks for another look that soon (the Node cache is loading).
	retryAfter time.Duration
}

type mapProblem struct {
	reason, message string
}

// maxMapProblems bounds the problems one map keeps: EndpointSlices are tenant input, and every
// endpoint could be a problem of its own.
const maxMapProblems = 100

func (m *addressMap) problem(reason, format string, args ...any) {
	if len(m.problems) >= maxMapProblems {
		m.more++
		return
	}
	m.problems = append(m.problems, mapProblem{reason: reason, message: fmt.Sprintf(format, args...)})
}

// summary puts a problem that sums up many entries first, where the bound cannot drop it.
func (m *addressMap) summary(reason, format string, args ...any) {
	m.problems = append([]mapProblem{{reason: reason, message: fmt.Sprintf(format, args...)}}, m.problems...)
	if len(m.problems) > maxMapProblems {
		m.problems = m.problems[:maxMapProblems]
		m.more++
	}
}

// hasProblems says whether anything about the map was reported.
func (m *addressMap) hasProblems() bool { return len(m.problems) > 0 || m.more > 0 }

// list returns the entries ordered by announced address.
func (m *addressMap) list() []rconnv1.AppliedAddressMapping {
	out := make([]rconnv1.AppliedAddressMapping, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Announced < out[b].Announced })
	return out
}

// claim is what one Service says about one announced address: its reachable address, or ""
// when the Service's address is not known yet (a pending load balancer, a Node without an
// address, an endpoint without a hostname). An unknown claim still counts in a conflict, so no
// other Service's entry is taken for that address while its own Service is pending.
type claim struct {
	reachable, service, why string
}

// previousMap is what the last reconcile showed: the entries of status.nodeAddressMap and the
// announced addresses of status.nodes. An entry there that some source still names keeps its
// target when another source conflicts with it.
type previousMap struct {
	entries   map[string]string
	announced map[string]bool
}

func previousOf(rc *rconnv1.RedisConnection) previousMap {
	p := previousMap{entries: map[string]string{}, announced: map[string]bool{}}
	for _, e := range rc.Status.NodeAddressMap {
		p.entries[e.Announced] = e.Reachable
	}
	for _, n := range rc.Status.Nodes {
		p.announced[n.Announced] = true
	}
	return p
}

// kept is the previous target of key, when the key was in use (mapped and announced by a node
// of the last topology). An entry for an address no node announced protects nothing: otherwise
// whoever names an address first (before a pod gets it) would keep it against the pod's own
// Service.
func (p previousMap) kept(key string) (string, bool) {
	t, ok := p.entries[key]
	return t, ok && p.announced[key]
}

// buildAddressMap resolves spec.nodeAddressMap: static entries, then every endpoint of the
// selected Services. Static wins. A problem costs only its own entries: the rest of the map is
// used (and rendered). An announced address that Services map to different targets (or that a
// Service claims while its own address is unknown) is a conflict: it keeps its previous target
// when that is one of them and the address was in use, and is otherwise left out and reported,
// never guessed.
func (r *RedisConnectionReconciler) buildAddressMap(ctx context.Context, rc *rconnv1.RedisConnection, prev previousMap) (*addressMap, error) {
	m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
	spec := rc.Spec.NodeAddressMap
	if spec == nil {
		return m, nil
	}
	for _, s := range spec.Static {
		m.entries[string(s.Announced)] = rconnv1.AppliedAddressMapping{Announced: string(s.Announced), Reachable: string(s.Reachable), Source: rconnv1.MappingSourceStatic}
	}
	claims := map[string][]claim{}
	nodes := &nodeLookup{src: r.nodeCache}
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
			if err := r.serviceClaims(ctx, &svcs.Items[si], src, m, nodes, claims); err != nil {
				return nil, err
			}
		}
	}
	nodes.report(m)
	m.resolve(claims, prev)
	return m, nil
}

// report adds what the Node lookups could not do to the map's problems.
func (n *nodeLookup) report(m *addressMap) {
	if n.err != nil {
		m.summary(rconnv1.ReasonNodeAddressUnknown, "new NodePort entries are left out: %v", n.err)
		m.retryAfter = nodeCacheRetry
	}
	if n.over > 0 {
		m.summary(rconnv1.ReasonNodeAddressUnknown, "%d endpoints are left out: their Nodes are beyond the first %d distinct Nodes this map looks up", n.over, maxNodeLookups)
	}
}

// resolve turns the Services' claims into entries (see buildAddressMap), in a fixed order.
func (m *addressMap) resolve(claims map[string][]claim, prev previousMap) {
	keys := make([]string, 0, len(claims))
	for k := range claims {
		if _, static := m.entries[k]; !static {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		cs := claims[k]
		var first *claim
		agree, known := true, 0
		for i := range cs {
			if cs[i].reachable == "" {
				agree = false
				continue
			}
			known++
			if first == nil {
				first = &cs[i]
			} else if cs[i].reachable != first.reachable {
				agree = false
			}
		}
		switch {
		case known == 0 && loading(cs) && prev.entries[k] != "":
			// The Node cache is still loading (a manager restart): the entry keeps its target
			// rather than leaving the rendered map for a second.
			m.entries[k] = rconnv1.AppliedAddressMapping{Announced: k, Reachable: prev.entries[k], Source: rconnv1.MappingSourceService, Service: cs[0].service}
		case known == 0:
			// Only Services whose address is unknown: their problem is reported already.
		case agree:
			m.entries[k] = rconnv1.AppliedAddressMapping{Announced: k, Reachable: first.reachable, Source: rconnv1.MappingSourceService, Service: first.service}
		default:
			m.conflict(k, cs, prev)
		}
	}
}

// conflict keeps key's previous target when a claim still names it and the key was in use;
// otherwise the key is left out. Either way it is reported, naming every claim (bounded).
func (m *addressMap) conflict(key string, cs []claim, prev previousMap) {
	var names []string
	for _, c := range cs {
		if c.reachable == "" {
			names = append(names, fmt.Sprintf("an unknown address (Service %s: %s)", c.service, c.why))
		} else {
			names = append(names, fmt.Sprintf("%s (Service %s)", c.reachable, c.service))
		}
	}
	listed := clipList(names, maxClaimsListed)
	if t, ok := prev.kept(key); ok {
		for _, c := range cs {
			if c.reachable == t {
				m.entries[key] = rconnv1.AppliedAddressMapping{Announced: key, Reachable: t, Source: rconnv1.MappingSourceService, Service: c.service}
				m.problem(rconnv1.ReasonMappingConflict, "%s is claimed as %s: keeping %s from the last map", key, listed, t)
				return
			}
		}
	}
	m.problem(rconnv1.ReasonMappingConflict, "%s is claimed as %s: left out", key, listed)
}

// loading says every claim is unknown only because the Node cache has not synced.
func loading(cs []claim) bool {
	for _, c := range cs {
		if c.reachable != "" || c.why != whyNodeCacheLoading {
			return false
		}
	}
	return true
}

// maxClaimsListed bounds the claims a conflict message names.
const maxClaimsListed = 4

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

// serviceClaims adds one Service's claims to claims: one per address of every endpoint its
// EndpointSlices list (ready, not ready and terminating alike).
func (r *RedisConnectionReconciler) serviceClaims(ctx context.Context, svc *corev1.Service, src rconnv1.ServiceAddressSource, m *addressMap, nodes *nodeLookup, claims map[string][]claim) error {
	if len(src.Ports) == 0 {
		return r.servicePortClaims(ctx, svc, src, src.Port, m, nodes, claims)
	}
	// fromServices[].ports: every listed port maps each endpoint address (a pod serving Redis
	// on 6379 and Sentinel on 26379 on one address); a port listed twice claims the same
	// entries twice with the same target, which resolve as one.
	for i := range src.Ports {
		if err := r.servicePortClaims(ctx, svc, src, &src.Ports[i], m, nodes, claims); err != nil {
			return err
		}
	}
	return nil
}

// servicePortClaims adds the claims of one Service port (want: by name or number; nil: the
// port named "redis", else the only one).
func (r *RedisConnectionReconciler) servicePortClaims(ctx context.Context, svc *corev1.Service, src rconnv1.ServiceAddressSource, want *intstr.IntOrString, m *addressMap, nodes *nodeLookup, claims map[string][]claim) error {
	sp, ok := servicePort(svc, want)
	if !ok {
		m.problem(rconnv1.ReasonServicePortNotFound, "Service %s has no port %s (set fromServices[].port or ports, or name the port \"redis\")", svc.Name, portDesc(want))
		return nil
	}
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return fmt.Errorf("listing EndpointSlices of Service %s: %w", svc.Name, err)
	}
	sort.Slice(slices.Items, func(a, b int) bool { return slices.Items[a].Name < slices.Items[b].Name })
	// The reachable host for Service-wide address types ("" with why: not known yet).
	svcHost, why := serviceHost(svc, sp, src.AddressType, m)

	ready := 0
	for _, es := range slices.Items {
		target, found := slicePort(es, sp.Name)
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
			at := endpointAt{svc: svc, sp: sp, typ: src.AddressType, target: target, svcHost: svcHost, why: why}
			reachable, epWhy, err := r.endpointReachable(ctx, at, ep, m, nodes)
			if err != nil {
				return err
			}
			for _, a := range ep.Addresses {
				k := net.JoinHostPort(a, strconv.Itoa(int(target)))
				claims[k] = append(claims[k], claim{reachable: reachable, service: svc.Name, why: epWhy})
			}
		}
	}
	if ready == 0 {
		m.problem(rconnv1.ReasonNoEndpoints, "Service %s has no serving endpoints on port %s", svc.Name, sp.Name)
	}
	return nil
}

// slicePort is the number of the slice's port with the Service port's name.
func slicePort(es discoveryv1.EndpointSlice, name string) (int32, bool) {
	var target int32
	found := false
	for _, p := range es.Ports {
		if p.Port != nil && ptrStr(p.Name) == name {
			target, found = *p.Port, true
		}
	}
	return target, found
}

// serviceHost is the reachable host of the Service-wide address types (ClusterIP,
// LoadBalancer). When it is not known, the problem is reported once for the Service, and why
// says it in the conflicts its endpoints' claims may take part in.
func serviceHost(svc *corev1.Service, sp *corev1.ServicePort, typ rconnv1.AddressType, m *addressMap) (host, why string) {
	switch typ {
	case rconnv1.AddressTypeClusterIP:
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			m.problem(rconnv1.ReasonNodeAddressUnknown, "Service %s is headless: ClusterIP mapping needs one ClusterIP Service per node (use PodDNS for headless Services)", svc.Name)
			return "", "headless"
		}
		return svc.Spec.ClusterIP, ""
	case rconnv1.AddressTypeLoadBalancer:
		ing := svc.Status.LoadBalancer.Ingress
		if len(ing) == 0 || (ing[0].IP == "" && ing[0].Hostname == "") {
			m.problem(rconnv1.ReasonLoadBalancerPending, "Service %s has no load balancer ingress yet: its endpoints are left out", svc.Name)
			return "", "load balancer pending"
		}
		if ing[0].IP != "" {
			return ing[0].IP, ""
		}
		return ing[0].Hostname, ""
	case rconnv1.AddressTypeNodePort:
		if sp.NodePort == 0 {
			m.problem(rconnv1.ReasonNodeAddressUnknown, "Service %s port %s has no nodePort (type %s)", svc.Name, sp.Name, svc.Spec.Type)
			return "", "no nodePort"
		}
	}
	return "", ""
}

// endpointAt is what an endpoint's reachable address is derived from besides the endpoint.
type endpointAt struct {
	svc     *corev1.Service
	sp      *corev1.ServicePort
	typ     rconnv1.AddressType
	target  int32
	svcHost string
	// why is set when the Service's own address is unknown (serviceHost).
	why string
}

// endpointReachable is the reachable address of one endpoint ("" with why when unknown).
func (r *RedisConnectionReconciler) endpointReachable(ctx context.Context, at endpointAt, ep discoveryv1.Endpoint, m *addressMap, nodes *nodeLookup) (reachable, why string, err error) {
	if at.why != "" {
		return "", at.why, nil
	}
	svc := at.svc
	switch at.typ {
	case rconnv1.AddressTypePodDNS:
		if ep.Hostname == nil || *ep.Hostname == "" {
			m.problem(rconnv1.ReasonNodeAddressUnknown, "an endpoint of Service %s has no hostname: PodDNS needs a headless Service of a StatefulSet", svc.Name)
			return "", "endpoint without hostname", nil
		}
		host := fmt.Sprintf("%s.%s.%s.svc.%s", *ep.Hostname, svc.Name, svc.Namespace, r.clusterDomain())
		return net.JoinHostPort(host, strconv.Itoa(int(at.target))), "", nil
	case rconnv1.AddressTypeClusterIP, rconnv1.AddressTypeLoadBalancer:
		return net.JoinHostPort(at.svcHost, strconv.Itoa(int(at.sp.Port))), "", nil
	case rconnv1.AddressTypeNodePort:
		name := ptrStr(ep.NodeName)
		if name == "" {
			m.problem(rconnv1.ReasonNodeAddressUnknown, "an endpoint of Service %s names no node", svc.Name)
			return "", "endpoint without node", nil
		}
		host, ok, err := nodes.address(ctx, name)
		switch {
		case err != nil:
			return "", "", err
		case !ok && nodes.err != nil:
			// Reported once for the map (nodeLookup.report).
			return "", whyNodeCacheLoading, nil
		case !ok:
			return "", "beyond the Nodes looked up", nil
		case host == "":
			m.problem(rconnv1.ReasonNodeAddressUnknown, "an endpoint of Service %s is on node %q, which does not exist or has no ExternalIP or InternalIP", svc.Name, name)
			return "", "node without address", nil
		}
		return net.JoinHostPort(host, strconv.Itoa(int(at.sp.NodePort))), "", nil
	}
	return "", "unknown address type", nil
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
