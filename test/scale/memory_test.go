package scale_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
)

// BenchmarkManagerMemory: the manager's peak RSS in a cluster full of objects it watches but
// mostly does not use. Present in envtest before the manager starts, over 20 namespaces:
//
//	RCONN_SCALE_SECRETS (default 20000) Secrets of ~3 KiB data each (3 keys); every second one
//	    created the way `kubectl apply` creates it: a kubectl.kubernetes.io/last-applied-
//	    configuration annotation holding the whole object (data included) and field manager
//	    kubectl-client-side-apply. The API server writes managedFields on every one.
//	RCONN_SCALE_SLICES (default 5000) EndpointSlices of 10 FQDN endpoints each, names under
//	    .invalid (never resolved or dialed), labelled with a Service name no RedisConnection
//	    selects.
//	RCONN_SCALE_MEM_CONNECTIONS (default 100) RedisConnections against the real cluster.
//
// Objects are created 16 at a time. Reports s-setup (creating the Secrets and EndpointSlices,
// once per process, shared by the variants), s-to-ready (manager start -> every
// RedisConnection Ready), MiB-peak-rss (VmHWM once everything is Ready and one health interval
// has passed), MiB-rss (VmRSS then) and the manager's go_memstats_heap_inuse_bytes /
// heap_sys_bytes then (MiB-heap-inuse, MiB-heap-sys), and how many streaming lists / LISTs of
// Secrets the API server served between manager start and Ready (secrets-watchlists,
// secrets-lists). Variants: manager=<rev> with RCONN_SCALE_BASELINE_REV, then the current
// manager ("manager=new"); each once per RCONN_SCALE_MANAGER_ENV alternative ("|"-separated
// sets of NAME=value for the manager process, e.g. "|GOMEMLIMIT=230MiB": without, then with).
func BenchmarkManagerMemory(b *testing.B) {
	var variants []string
	if rev := os.Getenv("RCONN_SCALE_BASELINE_REV"); rev != "" {
		variants = append(variants, rev)
	}
	variants = append(variants, "")
	// RCONN_SCALE_MANAGER_ENV: extra environment for the manager, e.g. "GOMEMLIMIT=230MiB" (what the
	// shipped Deployment sets). Alternatives separated by "|" each make a variant sharing the
	// populated objects; an empty alternative is the plain environment: "|GOMEMLIMIT=230MiB".
	envSets := strings.Split(os.Getenv("RCONN_SCALE_MANAGER_ENV"), "|")
	var populated sync.Once
	var setupTime time.Duration
	var memNamespaces []string
	b.Cleanup(func() {
		// The next benchmarks should not carry these objects.
		ctx := context.Background()
		for _, ns := range memNamespaces {
			_ = fx.k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns))
			_ = fx.k8s.DeleteAllOf(ctx, &discoveryv1.EndpointSlice{}, client.InNamespace(ns))
		}
	})
	for _, rev := range variants {
		for _, envSet := range envSets {
			name := "manager=new"
			if rev != "" {
				name = "manager=" + rev
			}
			managerEnv := strings.Fields(envSet)
			if len(managerEnv) > 0 {
				name += ",env=" + strings.Join(managerEnv, ",")
			}
			b.Run(name, func(b *testing.B) {
				f := setup(b)
				populated.Do(func() { memNamespaces, setupTime = f.populate(b) })
				if memNamespaces == nil {
					b.Fatal("populating failed")
				}
				bin := managertest.Build(fixtureTB{b})
				if rev != "" {
					bin = managertest.BuildRevision(fixtureTB{b}, rev)
				}
				for i := 0; i < b.N; i++ {
					runs++
					b.ReportMetric(setupTime.Seconds(), "s-setup")
					f.memoryRun(b, fmt.Sprintf("mem%d", runs), bin, managerEnv, memNamespaces)
				}
			})
		}
	}
}

// populate creates the Secrets and EndpointSlices; returns their namespaces and the time taken.
func (f *fixture) populate(b *testing.B) ([]string, time.Duration) {
	ctx := context.Background()
	secrets := envInt("RCONN_SCALE_SECRETS", 20000)
	slices := envInt("RCONN_SCALE_SLICES", 5000)
	const nsCount = 20
	namespaces := make([]string, nsCount)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("mem-ns%02d", i)
		must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespaces[i]}}))
	}
	start := time.Now()
	rnd := rand.New(rand.NewSource(1))
	blob := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte('a' + rnd.Intn(26))
		}
		return p
	}
	// A few distinct payloads, reused: the API server and the cache see distinct objects either way.
	payloads := make([]map[string][]byte, 16)
	for i := range payloads {
		payloads[i] = map[string][]byte{"tls.crt": blob(1400), "tls.key": blob(1200), "ca.crt": blob(600)}
	}
	work := make(chan func() error, 64)
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range work {
				if err := job(); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < secrets; i++ {
		ns, name, data := namespaces[i%nsCount], fmt.Sprintf("bulk-%05d", i), payloads[i%len(payloads)]
		applied := i%2 == 0
		work <- func() error {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "bulk"}},
				Type: corev1.SecretTypeOpaque, Data: data}
			var opts []client.CreateOption
			if applied {
				s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied(s)}
				opts = append(opts, client.FieldOwner("kubectl-client-side-apply"))
			}
			return client.IgnoreAlreadyExists(f.k8s.Create(ctx, s, opts...))
		}
	}
	ready := true
	for i := 0; i < slices; i++ {
		ns, name := namespaces[i%nsCount], fmt.Sprintf("bulk-%05d", i)
		work <- func() error {
			es := &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("bulk-%04d", i/4)}},
				AddressType: discoveryv1.AddressTypeFQDN,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr("redis"), Port: ptr(int32(6379))}},
			}
			for k := 0; k < 10; k++ {
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{fmt.Sprintf("pod-%d-%d.bulk-%04d.%s.svc.rconn-scale.invalid", i, k, i/4, ns)},
					Conditions: discoveryv1.EndpointConditions{Ready: &ready},
					Hostname:   ptr(fmt.Sprintf("pod-%d-%d", i, k)),
				})
			}
			return client.IgnoreAlreadyExists(f.k8s.Create(ctx, es))
		}
	}
	close(work)
	wg.Wait()
	must(b, firstErr)
	d := time.Since(start)
	b.Logf("created %d Secrets and %d EndpointSlices in %s", secrets, slices, d.Round(time.Millisecond))
	return namespaces, d
}

// lastApplied is what `kubectl apply` stores: the applied object as JSON (data base64).
func lastApplied(s *corev1.Secret) string {
	data := map[string]string{}
	for k, v := range s.Data {
		data[k] = base64.StdEncoding.EncodeToString(v)
	}
	j, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": string(s.Type), "data": data,
		"metadata": map[string]any{"annotations": map[string]string{}, "labels": s.Labels, "name": s.Name, "namespace": s.Namespace},
	})
	return string(j) + "\n"
}

func (f *fixture) memoryRun(b *testing.B, run, bin string, managerEnv, namespaces []string) {
	ctx := context.Background()
	n := envInt("RCONN_SCALE_MEM_CONNECTIONS", 100)
	interval := 5 * time.Second
	for _, ns := range namespaces {
		must(b, f.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-acl", Namespace: ns},
			Data: map[string][]byte{"username": []byte("app"), "password": []byte("s3cret")}}))
	}
	b.Cleanup(func() { f.deleteRunObjects(namespaces) })
	roots := []rconnv1.RootNode{}
	for _, mn := range f.cluster.Masters() {
		roots = append(roots, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + mn.Addr())})
	}
	b.Logf("streaming list probe (WATCH Secrets with sendInitialEvents=true): %s", f.probeWatchList(ctx, namespaces[0]))
	before := f.apiserverListCounts(ctx, b)
	start := time.Now()
	m := managertest.StartBinary(b, bin, f.kubecfg, managerEnv, strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))...)
	b.Logf("manager pid %d, env %q, log %s", m.Pid(), managerEnv, m.LogPath)
	for i := 0; i < n; i++ {
		rc := scaleConnection(namespaces[i%len(namespaces)], fmt.Sprintf("%s-rc-%03d", run, i), roots, interval)
		rc.Labels = map[string]string{"rconn-bench": run}
		must(b, f.k8s.Create(ctx, rc))
	}
	ready, err := f.waitAllReady(ctx, run, n, start, start.Add(5*time.Minute))
	if err != nil {
		b.Fatalf("%v (manager log tail: %s)", err, tail(m.Log(), 3000))
	}
	b.ReportMetric(ready.Seconds(), "s-to-ready")
	// How the manager's informers got their initial state: streaming lists (WATCH with
	// sendInitialEvents, counted in apiserver_watch_list_duration_seconds) or a plain LIST (what
	// client-go falls back to when the API server refuses streaming, e.g. on etcd 3.4 without
	// RequestWatchProgress). Counted on the API server between manager start and Ready.
	after := f.apiserverListCounts(ctx, b)
	for _, k := range []string{"secrets", "endpointslices"} {
		b.Logf("API server, %s, manager start -> Ready: LIST requests %+.0f, WATCH requests %+.0f, completed watch-lists (sendInitialEvents) %+.0f",
			k, after[k+"/LIST"]-before[k+"/LIST"], after[k+"/WATCH"]-before[k+"/WATCH"], after[k+"/watchlist"]-before[k+"/watchlist"])
	}
	b.ReportMetric(after["secrets/watchlist"]-before["secrets/watchlist"], "secrets-watchlists")
	b.ReportMetric(after["secrets/LIST"]-before["secrets/LIST"], "secrets-lists")
	time.Sleep(interval + interval/10 + time.Second)
	peak, err := m.PeakRSS()
	must(b, err)
	rss, err := m.RSS()
	must(b, err)
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-rss")
	b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
	if mfs, err := m.Metrics(); err == nil {
		// The Go heap then (live + not yet collected) vs what the runtime holds from the OS.
		b.ReportMetric(managertest.Sum(mfs, "go_memstats_heap_inuse_bytes", nil)/(1<<20), "MiB-heap-inuse")
		b.ReportMetric(managertest.Sum(mfs, "go_memstats_heap_sys_bytes", nil)/(1<<20), "MiB-heap-sys")
	}
	b.Logf("%d RedisConnections Ready %s after the manager started; peak RSS %.1f MiB, RSS %.1f MiB",
		n, ready.Round(time.Millisecond), float64(peak)/(1<<20), float64(rss)/(1<<20))
	if m.Exited() {
		b.Fatalf("the manager exited during the run; log tail:\n%s", tail(m.Log(), 3000))
	}
}

// apiserverListCounts reads the API server's request counters for Secrets and EndpointSlices:
// "<resource>/LIST", "<resource>/WATCH" (apiserver_request_total) and "<resource>/watchlist"
// (apiserver_watch_list_duration_seconds' count: streaming lists that sent their initial events).
func (f *fixture) apiserverListCounts(ctx context.Context, b *testing.B) map[string]float64 {
	out := map[string]float64{}
	raw, err := f.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.Logf("API server metrics: %v", err)
		return out
	}
	mfs, err := managertest.Parse(strings.NewReader(string(raw)))
	if err != nil {
		b.Logf("API server metrics: %v", err)
		return out
	}
	for _, res := range []string{"secrets", "endpointslices"} {
		for _, verb := range []string{"LIST", "WATCH"} {
			out[res+"/"+verb] = managertest.Sum(mfs, "apiserver_request_total", map[string]string{"resource": res, "verb": verb})
		}
		out[res+"/watchlist"] = managertest.Sum(mfs, "apiserver_watch_list_duration_seconds", map[string]string{"resource": res})
	}
	return out
}

// probeWatchList asks the API server for a streaming list of one Secret (what client-go's
// WatchListClient sends) and says how it answered: the initial-events-end bookmark, or the error.
func (f *fixture) probeWatchList(ctx context.Context, ns string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := f.cs.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{
		SendInitialEvents: ptr(true), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks: true, FieldSelector: "metadata.name=bulk-00000",
	})
	if err != nil {
		return "refused: " + err.Error()
	}
	defer w.Stop()
	objects := 0
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			return fmt.Sprintf("error event after %d objects: %v", objects, apierrors.FromObject(ev.Object))
		case watch.Bookmark:
			if m, err := meta.Accessor(ev.Object); err == nil && m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
				return fmt.Sprintf("served: %d initial object(s), then the initial-events-end bookmark", objects)
			}
		default:
			objects++
		}
	}
	return fmt.Sprintf("watch closed after %d objects without the initial-events-end bookmark", objects)
}
