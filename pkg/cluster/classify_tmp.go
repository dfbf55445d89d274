package cluster

// TEMPORARY stand-in until the cluster-hardening branch lands (replaced by classify.go).

import "errors"

type ErrorClass string

const (
	ClassUnreachable          ErrorClass = "Unreachable"
	ClassNotCluster           ErrorClass = "NotCluster"
	ClassClusterModeServer    ErrorClass = "ClusterModeServer"
	ClassAuthenticationFailed ErrorClass = "AuthenticationFailed"
	ClassTLSHandshakeFailed   ErrorClass = "TLSHandshakeFailed"
	ClassProtocolError        ErrorClass = "ProtocolError"
	ClassReplyTooLarge        ErrorClass = "ReplyTooLarge"
	ClassTopologyTooLarge     ErrorClass = "TopologyTooLarge"
	ClassAddressDenied        ErrorClass = "AddressDenied"
)

func Classify(err error) (ErrorClass, string) {
	switch {
	case errors.Is(err, ErrNotCluster):
		return ClassNotCluster, ErrNotCluster.Error()
	case errors.Is(err, ErrClusterModeServer):
		return ClassClusterModeServer, ErrClusterModeServer.Error()
	}
	return ClassUnreachable, "no Redis server answered"
}
