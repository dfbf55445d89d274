package bench

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuMark is the CPU time used so far by this process and by the servers of a topology.
type cpuMark struct {
	t       *topology
	process time.Duration
	servers time.Duration
	err     error
}

func (t *topology) startCPU(ctx context.Context) cpuMark {
	s, err := t.serverCPU(ctx)
	return cpuMark{t: t, process: processCPU(), servers: s, err: err}
}

// report adds client-us/cmd (this process, or external when the client was another process)
// and server-us/cmd (the sum over the topology's servers, from INFO cpu) for cmds commands.
func (m cpuMark) report(ctx context.Context, b *testing.B, external time.Duration, cmds int) {
	if cmds <= 0 {
		return
	}
	client := processCPU() - m.process
	if external > 0 {
		client = external
	}
	b.ReportMetric(float64(client)/float64(time.Microsecond)/float64(cmds), "client-us/cmd")
	s, err := m.t.serverCPU(ctx)
	if err != nil || m.err != nil {
		return
	}
	b.ReportMetric(float64(s-m.servers)/float64(time.Microsecond)/float64(cmds), "server-us/cmd")
}

// serverCPU sums used_cpu_user and used_cpu_sys of every server of the topology.
func (t *topology) serverCPU(ctx context.Context) (time.Duration, error) {
	var total time.Duration
	for _, a := range t.admins {
		info, err := a.Info(ctx, "cpu").Result()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return 0, err
				}
				total += time.Duration(f * float64(time.Second))
			}
		}
	}
	return total, nil
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
