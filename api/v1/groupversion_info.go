// Package v1 contains the RedisConnection API (group rconn.dev, version v1).
// +kubebuilder:object:generate=true
// +groupName=rconn.dev
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "rconn.dev", Version: "v1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers RedisConnection and its list, and the meta/v1 types of the group
// version (what controller-runtime's deprecated scheme.Builder.Register did).
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RedisConnection{}, &RedisConnectionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
