package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

func newStatusCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show topology, node address map, node health and conditions (with what to do)",
		Long: `Shows what the rconn controller found for the RedisConnection NAME: shards with their slots,
every node with its role, announced and mapped address and health, the node address map as
applied, and the conditions. For each condition that is False, one line says what to do
(the long form is in docs/api.md, Conditions). In Sentinel mode it adds the master name, the
current master and the sentinels from the rendered config.json. Reads only the RedisConnection
(and, in Sentinel mode, its ConfigMap): never a Secret.`,
		Example: "  kubectl rconn status cache\n  kubectl rconn status -n shop cache",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connection(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var b strings.Builder
			printStatus(&b, c)
			if c.rc.Spec.Mode == rconnv1.ModeSentinel {
				// Sentinel details as apps get them (config.json): status lists data nodes only.
				if _, cfg, err := a.renderedConfig(cmd.Context(), c); err != nil {
					fmt.Fprintf(&b, "\nSentinel: config.json not readable: %v\n", err)
				} else {
					printSentinelConfig(&b, cfg)
				}
			}
			_, err = io.WriteString(a.Out, b.String())
			return err
		},
	}
}

func printStatus(out *strings.Builder, c *connection) {
	rc, st := c.rc, &c.rc.Status
	mode := rc.Spec.Mode
	if mode == "" {
		mode = rconnv1.ModeCluster
	}
	fmt.Fprintf(out, "RedisConnection %s/%s (mode %s, generation %d, observed %d)\n", rc.Namespace, rc.Name, mode, rc.Generation, st.ObservedGeneration)
	switch mode {
	case rconnv1.ModeSentinel:
		master := ""
		if rc.Spec.Sentinel != nil {
			master = rc.Spec.Sentinel.MasterName
		}
		fmt.Fprintf(out, "Topology: sentinel, master name %q, %d data nodes (%d healthy)\n", master, st.NodeCount, st.HealthyNodeCount)
	case rconnv1.ModeCluster:
		fmt.Fprintf(out, "Topology: %d shards, %d nodes (%d healthy), %d/16384 slots served\n", st.ShardCount, st.NodeCount, st.HealthyNodeCount, st.SlotsCovered)
	default:
		fmt.Fprintf(out, "Topology: standalone, %d nodes (%d healthy)\n", st.NodeCount, st.HealthyNodeCount)
	}
	fmt.Fprintf(out, "Outputs: ConfigMap %s (config.json), Secret %s (contents not shown)\n", c.configMap, c.secret)

	fmt.Fprintln(out, "\nNodes:")
	printNodes(out, st)
	fmt.Fprintf(out, "\nNode address map (%d entries):\n", len(st.NodeAddressMap))
	if len(st.NodeAddressMap) == 0 {
		fmt.Fprintln(out, "  (none: nodes are dialed as they announce themselves)")
	} else {
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "  ANNOUNCED\tREACHABLE\tSOURCE\tSERVICE")
		for _, m := range st.NodeAddressMap {
			_, _ = fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.Announced, m.Reachable, m.Source, dash(m.Service))
		}
		_ = tw.Flush() // into a strings.Builder: cannot fail
	}
	fmt.Fprintln(out, "\nConditions:")
	printConditions(out, rc.Generation, st.Conditions)
}

// printNodes lists nodes shard by shard (master first, then its replicas), then any node no
// shard names.
func printNodes(out *strings.Builder, st *rconnv1.RedisConnectionStatus) {
	if len(st.Nodes) == 0 {
		fmt.Fprintln(out, "  (none yet: see the conditions)")
		return
	}
	byID := map[string]*rconnv1.NodeStatus{}
	for i := range st.Nodes {
		if id := st.Nodes[i].ID; id != "" {
			byID[id] = &st.Nodes[i]
		}
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "  SHARD\tSLOTS\tROLE\tID\tANNOUNCED\tMAPPED\tHEALTH")
	shown := map[*rconnv1.NodeStatus]bool{}
	row := func(shard, slots string, n *rconnv1.NodeStatus) {
		shown[n] = true
		_, _ = fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", shard, slots, dash(string(n.Role)), shortID(n.ID), n.Announced, dash(n.Mapped), dash(string(n.Health)))
	}
	for i, sh := range st.Shards {
		slots := dash(strings.Join(sh.Slots, ","))
		if m := byID[sh.MasterID]; m != nil {
			row(fmt.Sprint(i+1), slots, m)
			slots = ""
		}
		for _, id := range sh.ReplicaIDs {
			if r := byID[id]; r != nil {
				row(fmt.Sprint(i+1), slots, r)
				slots = ""
			}
		}
	}
	for i := range st.Nodes {
		if n := &st.Nodes[i]; !shown[n] {
			row("-", "-", n)
		}
	}
	_ = tw.Flush() // into a strings.Builder: cannot fail
}

func printConditions(out *strings.Builder, generation int64, conds []metav1.Condition) {
	if len(conds) == 0 {
		fmt.Fprintln(out, "  (none yet: the controller has not reconciled this RedisConnection; is the manager running?)")
		return
	}
	for _, t := range []string{rconnv1.ConditionReady, rconnv1.ConditionCredentialsResolved, rconnv1.ConditionAddressMapResolved,
		rconnv1.ConditionTopologyDiscovered, rconnv1.ConditionNodesHealthy, rconnv1.ConditionConfigRendered} {
		for _, c := range conds {
			if c.Type != t {
				continue
			}
			stale := ""
			if c.ObservedGeneration != 0 && c.ObservedGeneration < generation {
				stale = fmt.Sprintf(" (for generation %d)", c.ObservedGeneration)
			}
			fmt.Fprintf(out, "  %-20s %-5s %s%s: %s\n", c.Type, c.Status, c.Reason, stale, c.Message)
			if c.Status != metav1.ConditionTrue {
				if adv := adviceFor(c.Type, c.Reason); adv != "" {
					fmt.Fprintf(out, "  %-20s       -> what to do: %s\n", "", adv)
				}
			}
		}
	}
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return dash(id)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
