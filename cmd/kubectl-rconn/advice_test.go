package main

import (
	"testing"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// TestAdviceForEveryFalseReason: every reason a condition can be False with (api/v1, as
// docs/api.md lists them) has a "what to do" line, also when Ready copies it.
func TestAdviceForEveryFalseReason(t *testing.T) {
	falseReasons := map[string][]string{
		rconnv1.ConditionReady: {rconnv1.ReasonReconciling, rconnv1.ReasonSecretNotFound, rconnv1.ReasonNodesUnreachable, rconnv1.ReasonSlotsUncovered},
		rconnv1.ConditionCredentialsResolved: {rconnv1.ReasonSecretNotFound, rconnv1.ReasonSecretKeyMissing, rconnv1.ReasonInvalidCertificate,
			rconnv1.ReasonCertificateExpired, rconnv1.ReasonCertificateNotYetValid, rconnv1.ReasonKeyMismatch, rconnv1.ReasonAdmissionPolicyMissing},
		rconnv1.ConditionAddressMapResolved: {rconnv1.ReasonMappingConflict, rconnv1.ReasonLoadBalancerPending, rconnv1.ReasonNoServices,
			rconnv1.ReasonNoEndpoints, rconnv1.ReasonServicePortNotFound, rconnv1.ReasonNodeAddressUnknown, rconnv1.ReasonPrerequisitesNotMet},
		rconnv1.ConditionTopologyDiscovered: {rconnv1.ReasonDiscovering, rconnv1.ReasonRootNodesUnreachable, rconnv1.ReasonInvalidOptions,
			rconnv1.ReasonProtocolError, rconnv1.ReasonTopologyTooLarge, rconnv1.ReasonAddressDenied, rconnv1.ReasonAuthenticationFailed,
			rconnv1.ReasonTLSHandshakeFailed, rconnv1.ReasonNotACluster, rconnv1.ReasonClusterModeServer, rconnv1.ReasonSlotsUncovered,
			rconnv1.ReasonPrerequisitesNotMet},
		rconnv1.ConditionNodesHealthy:   {rconnv1.ReasonNodesUnreachable, rconnv1.ReasonNodesUnhealthy, rconnv1.ReasonPrerequisitesNotMet},
		rconnv1.ConditionConfigRendered: {rconnv1.ReasonPrerequisitesNotMet, rconnv1.ReasonOutputConflict, rconnv1.ReasonConfigTooLarge, rconnv1.ReasonOutputWriteFailed},
	}
	for cond, reasons := range falseReasons {
		for _, r := range reasons {
			if adviceFor(cond, r) == "" {
				t.Errorf("no advice for %s=False reason %s", cond, r)
			}
		}
	}
	if a := adviceFor(rconnv1.ConditionNodesHealthy, rconnv1.ReasonAllNodesHealthy); a != "" {
		t.Errorf("advice for a True reason: %q", a)
	}
}
