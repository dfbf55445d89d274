package rig

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The pod network: one network namespace per rig with a veth pair into it. Pod IPs come from
// 198.18.0.0/15 (RFC 2544 benchmarking range, neither private nor routed; the API server refuses
// loopback addresses in EndpointSlices) and exist only inside that namespace:
//
//	host:   rrig<N>h  198.19.<N>.1/32, route 198.18.<N>.0/24 dev rrig<N>h
//	netns:  rrig<N>p  route 198.19.<N>.1/32 dev rrig<N>p
//	        local route 198.18.<N>.0/24 dev lo (every pod IP of the rig is an address there)
//
// so a redis-server started in the namespace with --bind <pod IP> is reachable from this host
// through the veth, and nothing of the range exists anywhere else. A namespace is owned by the
// process whose PID is in stateDir/<name>.pid; Setup removes namespaces whose owner is gone
// (what a killed run left behind), and Teardown removes this one.

const (
	netnsPrefix = "rconn-rig-"
	maxNetworks = 200
)

// stateDir holds the owner PID of each rig namespace.
var stateDir = "/run/rconn-rig"

// PodNetwork is one rig's network namespace.
type PodNetwork struct {
	// Name is the namespace (ip netns exec Name ...).
	Name string
	// Index is N in the addresses above.
	Index int
	// PodCIDR is the range kwok allocates pod IPs from (198.18.N.0/24).
	PodCIDR netip.Prefix
	// HostAddr is the host end of the veth (198.19.N.1): the source of every connection from
	// this host into the pod network.
	HostAddr netip.Addr
	hostIf   string
}

// ErrNoPrivileges says the rig cannot make network namespaces here.
var ErrNoPrivileges = errors.New("the rig's pod network needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip` to create network namespaces and veth pairs")

// CheckPrivileges returns a clear error when network namespaces cannot be made, without making
// one.
func CheckPrivileges() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: `ip` not found (apt-get install iproute2)", ErrNoPrivileges)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: running as uid %d", ErrNoPrivileges, os.Geteuid())
	}
	return nil
}

func ipCmd(args ...string) error {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// SetupPodNetwork removes leftovers of dead runs and creates a new pod network.
func SetupPodNetwork() (*PodNetwork, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoPrivileges, err)
	}
	CleanupLeftovers()
	for i := 1; i <= maxNetworks; i++ {
		name := netnsPrefix + strconv.Itoa(i)
		// O_EXCL claims the index among concurrent runs before ip netns add does.
		f, err := os.OpenFile(filepath.Join(stateDir, name+".pid"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			continue
		}
		_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
		_ = f.Close()
		n := &PodNetwork{
			Name:     name,
			Index:    i,
			PodCIDR:  netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i)),
			HostAddr: netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", i)),
			hostIf:   fmt.Sprintf("rrig%dh", i),
		}
		if err := n.create(); err != nil {
			n.Teardown()
			if strings.Contains(err.Error(), "Operation not permitted") || strings.Contains(err.Error(), "Permission denied") {
				return nil, fmt.Errorf("%w: %w", ErrNoPrivileges, err)
			}
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("no free rig network index in 1..%d (see %s)", maxNetworks, stateDir)
}

func (n *PodNetwork) create() error {
	peer := fmt.Sprintf("rrig%dp", n.Index)
	steps := [][]string{
		{"netns", "add", n.Name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", peer, "netns", n.Name},
		{"addr", "add", n.HostAddr.String() + "/32", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"route", "add", n.PodCIDR.String(), "dev", n.hostIf, "src", n.HostAddr.String()},
		{"-n", n.Name, "link", "set", "lo", "up"},
		{"-n", n.Name, "link", "set", peer, "up"},
		{"-n", n.Name, "route", "add", n.HostAddr.String() + "/32", "dev", peer},
		{"-n", n.Name, "route", "add", "local", n.PodCIDR.String(), "dev", "lo"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// Exec returns a command that runs inside the pod network, dying with this process.
func (n *PodNetwork) Exec(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// netnsEtc is where `ip netns exec` finds a namespace's own /etc files (it bind-mounts
// netnsEtc/<name>/resolv.conf over /etc/resolv.conf for the command it runs).
var netnsEtc = "/etc/netns"

// SetResolver makes every program started in the pod network afterwards (Exec) resolve names
// through the DNS server at ip:53 only: the namespace's own resolv.conf, as a kubelet writes a
// pod's. Without it a pod's redis-server would ask the machine's resolver. Teardown removes it.
func (n *PodNetwork) SetResolver(ip string) error {
	// A query leaving the namespace needs a source address the host can answer: the peer end
	// gets 198.19.N.2 (the namespace has no address of its own; pod IPs are a local route).
	src := fmt.Sprintf("198.19.%d.2", n.Index)
	peer := fmt.Sprintf("rrig%dp", n.Index)
	for _, s := range [][]string{
		{"-n", n.Name, "addr", "replace", src + "/32", "dev", peer},
		{"-n", n.Name, "route", "replace", n.HostAddr.String() + "/32", "dev", peer, "src", src},
		{"route", "replace", src + "/32", "dev", n.hostIf, "src", n.HostAddr.String()},
	} {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	dir := filepath.Join(netnsEtc, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := "nameserver " + ip + "\noptions timeout:1 attempts:2\n"
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644)
}

// Teardown kills what still runs in the namespace and removes it, its veth pair (and with it
// the route) and its state file. Safe to call more than once.
func (n *PodNetwork) Teardown() {
	removeNetwork(n.Name)
}

func removeNetwork(name string) {
	killNetnsProcesses(name)
	_ = ipCmd("netns", "del", name) // deleting the namespace deletes the veth pair and its route
	if idx, err := strconv.Atoi(strings.TrimPrefix(name, netnsPrefix)); err == nil {
		_ = ipCmd("link", "del", fmt.Sprintf("rrig%dh", idx))
	}
	_ = os.RemoveAll(filepath.Join(netnsEtc, name))
	_ = os.Remove(netnsEtc) // only when empty: another namespace's files stay
	_ = os.Remove(filepath.Join(stateDir, name+".pid"))
}

// killNetnsProcesses SIGKILLs the processes inside a rig namespace: rig processes only (each
// was started there by a rig, which is the only thing that uses these namespaces).
func killNetnsProcesses(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// CleanupLeftovers removes rig namespaces whose owning process is gone.
func CleanupLeftovers() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	owned := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], netnsPrefix) {
			continue
		}
		owned[fields[0]] = true
	}
	// State files without a namespace (a run killed between claim and create) count too.
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".pid"); ok && strings.HasPrefix(name, netnsPrefix) {
			owned[name] = true
		}
	}
	for name := range owned {
		if ownerAlive(name) {
			continue
		}
		removeNetwork(name)
	}
}

func ownerAlive(name string) bool {
	b, err := os.ReadFile(filepath.Join(stateDir, name+".pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	// A live PID that is a different program (PID reuse) still counts as alive: leaving a
	// namespace is safer than removing a live run's.
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
