package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// App is what every subcommand shares: output streams, the API clients (made on first use
// from kubectl's flags), and the base dial function beneath the node address map.
type App struct {
	Out, Err io.Writer
	// Connect fills in the clients from the command line's connection flags.
	Connect func() error
	// Dial is the base dial function for check and the Redis side of port-forward (nil:
	// net.Dialer). Tests pass one that dials loopback only.
	Dial cluster.DialFunc

	rest      *rest.Config
	namespace string
	kube      ctrlclient.Client
	clientset kubernetes.Interface
}

// ExitError ends the program with Code after the command has said why.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Scheme holds the built-in types and rconn.dev/v1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := rconnv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Use sets the API server and the default namespace.
func (a *App) Use(cfg *rest.Config, namespace string, clients func(*rest.Config) (ctrlclient.Client, kubernetes.Interface, error)) error {
	c, cs, err := clients(cfg)
	if err != nil {
		return err
	}
	a.rest, a.namespace, a.kube, a.clientset = cfg, namespace, c, cs
	return nil
}

// NewRootCommand is the command tree.
func NewRootCommand(a *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-rconn",
		Short: "Inspect and use rconn RedisConnections",
		Long: `kubectl rconn shows what the rconn controller found for a RedisConnection, hands out client
snippets from its rendered config.json, checks every Redis node from where you are, and gives a
laptop access to an in-cluster Redis Cluster through port-forwards and a local rconn proxy.

NAME is a RedisConnection in the namespace of -n/--namespace (or the kubeconfig context's).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// kubectl plugins are called as "kubectl rconn"; show that in usage lines.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl rconn"},
	}
	root.AddCommand(newStatusCommand(a), newConfigCommand(a), newCheckCommand(a), newPortForwardCommand(a))
	return root
}

// connection is one RedisConnection and the names of its outputs.
type connection struct {
	rc        *rconnv1.RedisConnection
	configMap string
	secret    string
}

func (a *App) connection(ctx context.Context, name string) (*connection, error) {
	if err := a.Connect(); err != nil {
		return nil, err
	}
	ns := a.namespace
	if n, rest, ok := strings.Cut(name, "/"); ok {
		ns, name = n, rest
	}
	rc := &rconnv1.RedisConnection{}
	if err := a.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, rc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("RedisConnection %s not found in namespace %s", name, ns)
		}
		return nil, fmt.Errorf("reading RedisConnection %s/%s: %w", ns, name, err)
	}
	c := &connection{rc: rc, configMap: rc.Name, secret: rc.Name}
	if o := rc.Spec.Output; o != nil {
		if o.ConfigMapName != "" {
			c.configMap = o.ConfigMapName
		}
		if o.SecretName != "" {
			c.secret = o.SecretName
		}
	}
	if b := rc.Status.Binding; b != nil && b.Name != "" {
		c.secret = b.Name
	}
	return c, nil
}

// renderedConfig reads config.json from the output ConfigMap.
func (a *App) renderedConfig(ctx context.Context, c *connection) ([]byte, *client.Config, error) {
	cm := &corev1.ConfigMap{}
	if err := a.kube.Get(ctx, types.NamespacedName{Namespace: c.rc.Namespace, Name: c.configMap}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("ConfigMap %s/%s does not exist yet: the controller renders it once the RedisConnection is resolved (kubectl rconn status %s)", c.rc.Namespace, c.configMap, c.rc.Name)
		}
		return nil, nil, fmt.Errorf("reading ConfigMap %s/%s: %w", c.rc.Namespace, c.configMap, err)
	}
	raw := []byte(cm.Data[client.ConfigFileName])
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("ConfigMap %s/%s has no %s", c.rc.Namespace, c.configMap, client.ConfigFileName)
	}
	cfg, err := client.LoadConfig(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("ConfigMap %s/%s: %w", c.rc.Namespace, c.configMap, err)
	}
	return raw, cfg, nil
}

// secretData reads the output Secret's keys. A Secret the user may not read (or that does
// not exist) is no error: the reason comes back as note, and the caller goes on without
// credentials and TLS material. The data is only ever handed to pkg/client, never printed.
func (a *App) secretData(ctx context.Context, c *connection) (data map[string][]byte, note string, err error) {
	s := &corev1.Secret{}
	err = a.kube.Get(ctx, types.NamespacedName{Namespace: c.rc.Namespace, Name: c.secret}, s)
	switch {
	case err == nil:
		return s.Data, "", nil
	case apierrors.IsForbidden(err):
		return nil, fmt.Sprintf("you may not read Secret %s/%s: going on without its credentials and TLS material", c.rc.Namespace, c.secret), nil
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("Secret %s/%s does not exist: going on without credentials and TLS material", c.rc.Namespace, c.secret), nil
	default:
		return nil, "", fmt.Errorf("reading Secret %s/%s: %w", c.rc.Namespace, c.secret, err)
	}
}

// oneShot is a client.Source holding one snapshot.
type oneShot struct{ s *client.Snapshot }

func (o oneShot) Snapshot(context.Context) (*client.Snapshot, error) { return o.s, nil }
func (o oneShot) Changed() <-chan struct{}                           { return nil }

// resolve validates config.json with the Secret by pkg/client's rules. A Secret that does not
// match (or could not be read) is used as it is, at once: this is a one-off look, not an app
// waiting for a rollout.
func resolve(ctx context.Context, raw []byte, secret map[string][]byte) (*client.Resolved, error) {
	w, err := client.Watch(ctx, oneShot{&client.Snapshot{Version: "1", Config: raw, Secret: secret}}, client.WatchOptions{SecretWait: 1})
	if err != nil {
		return nil, err
	}
	defer w.Close()
	return w.Current(), nil
}
