package rig

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// AppLabel is the label of every pod of a StatefulSet made here (app=<name>).
const AppLabel = "app.kubernetes.io/name"

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// HeadlessService is what the Redis Cluster charts put in front of their StatefulSet: a
// headless Service (the StatefulSet's serviceName, giving each pod <pod>.<svc> DNS) with the
// client port "redis" and the bus port. publishNotReadyAddresses is the Bitnami chart's
// setting (its pods must find each other before they are Ready).
func HeadlessService(ns, name, app string, publishNotReady bool) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{AppLabel: app}},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{AppLabel: app},
			PublishNotReadyAddresses: publishNotReady,
			Ports: []corev1.ServicePort{
				{Name: "redis", Port: 6379},
				{Name: "bus", Port: 16379},
			},
		},
	}
}

// StatefulSet returns a Redis StatefulSet shaped like the charts': Parallel pod management,
// rolling updates, a container "redis" with the client and bus ports. The image is never
// pulled (kwok runs no containers; the pod runner starts redis-server for it).
func StatefulSet(ns, name, service string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{AppLabel: name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         service,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					AutomountServiceAccountToken:  ptr.To(false),
					Containers: []corev1.Container{{
						Name:  "redis",
						Image: "redis:7.0",
						Ports: []corev1.ContainerPort{
							{Name: "redis", ContainerPort: 6379},
							{Name: "bus", ContainerPort: 16379},
						},
					}},
				},
			},
		},
	}
}
