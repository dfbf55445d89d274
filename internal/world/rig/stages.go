package rig

import (
	"fmt"
	"os"
	"path/filepath"
)

// kwok's stages. Nodes use kwok's own node-initialize (from its module, bin/rig/kwok-stages);
// pods use the two below instead of kwok's "fast" set, so that the rig behaves like a kubelet
// where rconn can tell the difference:
//
//   - pod-start: a scheduled Pending pod becomes Running with a pod IP from --cidr, its
//     containers started but NOT ready. Readiness is the pod runner's (pods.go): it marks the pod
//     Ready once its redis-server answers, the way a readiness probe does, and un-ready again on
//     request. kwok's fast stage makes every pod Ready at once, before anything listens.
//   - pod-delete: a terminating pod is removed when its grace period is over (deletionTimestamp),
//     not at once. The pod runner removes it earlier, as a kubelet does, as soon as its
//     redis-server has exited; this stage is the fallback for pods no runner serves. Meanwhile
//     the pod is terminating, and the endpointslice controller reports it so.
const podStages = `
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: rconn-pod-start
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.spec.nodeName'
      operator: 'Exists'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: PodScheduled
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: rconn-pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  delay:
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '.metadata.deletionTimestamp'
  next:
    finalizers:
      empty: true
    delete: true
`

// writeStages writes kwok's node-initialize stage and the pod stages above into one file.
func (r *Rig) writeStages(assets string) (string, error) {
	var node []byte
	for _, f := range []string{"node-initialize.yaml", "node-heartbeat.yaml"} {
		b, err := os.ReadFile(filepath.Join(assets, "kwok-stages", f))
		if err != nil {
			return "", fmt.Errorf("rig: kwok node stage: %w (run `make rig-assets`)", err)
		}
		node = append(append(node, b...), []byte("\n---\n")...)
	}
	path := filepath.Join(r.Dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, append(node, []byte(podStages)...), 0o644)
}
