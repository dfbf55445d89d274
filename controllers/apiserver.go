package controllers

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// APIServerAddresses returns the API server's own ip:port addresses, which no RedisConnection
// may make the controller dial (the address policy denies them): the host of cfg when it is an
// IP literal, and the ClusterIP and endpoints of the default/kubernetes Service when RBAC lets
// the manager read them. Names are not resolved. Errors only shorten the list.
func APIServerAddresses(ctx context.Context, cfg *rest.Config) []netip.AddrPort {
	var out []netip.AddrPort
	add := func(ip string, port int) {
		a, err := netip.ParseAddr(ip)
		if err != nil || port <= 0 || port > 65535 {
			return
		}
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		for _, x := range out {
			if x == ap {
				return
			}
		}
		out = append(out, ap)
	}
	if u, err := url.Parse(cfg.Host); err == nil && u.Host != "" {
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "443"
			if u.Scheme == "http" {
				port = "80"
			}
		}
		p, _ := strconv.Atoi(port)
		add(host, p)
	} else if host, port, err := net.SplitHostPort(cfg.Host); err == nil {
		p, _ := strconv.Atoi(port)
		add(host, p)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return out
	}
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, svc); err == nil {
		for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
			for _, p := range svc.Spec.Ports {
				add(ip, int(p.Port))
			}
		}
	}
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err == nil {
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				for _, a := range e.Addresses {
					for _, p := range s.Ports {
						if p.Port != nil {
							add(a, int(*p.Port))
						}
					}
				}
			}
		}
	}
	return out
}
