package controllers

import (
	"testing"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// After a failover with the old master down, CLUSTER SHARDS still lists that master, alone, with
// no slots: a shard only counts when it owns slots or has a live master.
func TestShardCountSkipsADeadMastersEmptyShard(t *testing.T) {
	node := func(id string, role cluster.Role, health string) *cluster.Node {
		return &cluster.Node{ID: id, Announced: id + ":6379", Role: role, Health: health}
	}
	slots := func(a, b int) []cluster.SlotRange { return []cluster.SlotRange{{Start: a, End: b}} }
	for _, tc := range []struct {
		name   string
		shards []cluster.Shard
		want   int32
	}{
		{"three healthy shards", []cluster.Shard{
			{Master: node("a", cluster.RoleMaster, "online"), Slots: slots(0, 5460)},
			{Master: node("b", cluster.RoleMaster, "online"), Slots: slots(5461, 10922)},
			{Master: node("c", cluster.RoleMaster, "online"), Slots: slots(10923, 16383)},
		}, 3},
		{"failover, old master down", []cluster.Shard{
			{Master: node("a2", cluster.RoleMaster, "online"), Slots: slots(0, 5460)},
			{Master: node("b", cluster.RoleMaster, "online"), Slots: slots(5461, 10922)},
			{Master: node("c", cluster.RoleMaster, "online"), Slots: slots(10923, 16383)},
			{Master: node("a", cluster.RoleMaster, "failed")},
		}, 3},
		{"failover, old master down, as Redis 7.0 says it", []cluster.Shard{
			{Master: node("a2", cluster.RoleMaster, "online"), Slots: slots(0, 5460)},
			{Master: node("b", cluster.RoleMaster, "online"), Slots: slots(5461, 10922)},
			{Master: node("c", cluster.RoleMaster, "online"), Slots: slots(10923, 16383)},
			{Master: node("a", cluster.RoleMaster, "fail")},
		}, 3},
		{"a live master without slots (a node being added) counts", []cluster.Shard{
			{Master: node("a", cluster.RoleMaster, "online"), Slots: slots(0, 16383)},
			{Master: node("d", cluster.RoleMaster, "online")},
		}, 2},
		{"a dead master that still owns slots counts (its shard is down, not gone)", []cluster.Shard{
			{Master: node("a", cluster.RoleMaster, "failed"), Slots: slots(0, 16383), Replicas: []*cluster.Node{node("a1", cluster.RoleReplica, "online")}},
		}, 1},
		{"health unknown (CLUSTER SLOTS) counts", []cluster.Shard{
			{Master: node("a", cluster.RoleMaster, ""), Slots: slots(0, 16383)},
		}, 1},
		{"no master, replicas only, no slots", []cluster.Shard{
			{Master: node("a", cluster.RoleMaster, "online"), Slots: slots(0, 16383)},
			{Replicas: []*cluster.Node{node("x", cluster.RoleReplica, "online")}},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := &cluster.Topology{Shards: tc.shards, SlotsCovered: cluster.SlotCount}
			for _, s := range tc.shards {
				if s.Master != nil {
					topo.Nodes = append(topo.Nodes, s.Master)
				}
				topo.Nodes = append(topo.Nodes, s.Replicas...)
			}
			rc := &rconnv1.RedisConnection{}
			setTopologyStatus(rc, topo, nil)
			if rc.Status.ShardCount != tc.want {
				t.Fatalf("shardCount = %d, want %d", rc.Status.ShardCount, tc.want)
			}
		})
	}
}
