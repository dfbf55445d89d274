// Command kubectl-rconn is the kubectl plugin for rconn RedisConnections (`kubectl rconn ...`
// once the binary is on PATH):
//
//	kubectl rconn status cache                  topology, node address map, health, conditions + what to do
//	kubectl rconn config cache --for redis-py   a ready client snippet from the rendered config.json
//	kubectl rconn check cache                   dial every node through the map from here
//	kubectl rconn port-forward cache            laptop access: redis-cli -c -p 7000
//
// It takes kubectl's connection flags (--kubeconfig, --context, -n/--namespace, --server, ...).
// See docs/kubectl-rconn.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
)

// version is stamped by the build (-ldflags "-X main.version=vX.Y.Z").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code: 0, 1 when a command found a problem
// (check: a node failed), 2 for usage errors and failures to talk to the API server.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runApp(ctx, &App{Out: stdout, Err: stderr}, args)
}

// runApp is run with the App given (tests set its base dial function).
func runApp(ctx context.Context, app *App, args []string) int {
	overrides := &clientcmd.ConfigOverrides{}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	app.Connect = func() error { return connect(app, rules, overrides) }
	root := NewRootCommand(app)
	root.Version = version
	root.PersistentFlags().StringVar(&rules.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
	clientcmd.BindOverrideFlags(overrides, root.PersistentFlags(), clientcmd.RecommendedConfigOverrideFlags(""))
	root.SetArgs(args)
	root.SetOut(app.Out)
	root.SetErr(app.Err)
	err := root.ExecuteContext(ctx)
	var exit *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	default:
		_, _ = fmt.Fprintln(app.Err, "error:", err)
		return 2
	}
}

// connect builds the API clients from kubectl's flags, the way kubectl does.
func connect(app *App, rules *clientcmd.ClientConfigLoadingRules, overrides *clientcmd.ConfigOverrides) error {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return fmt.Errorf("kubeconfig namespace: %w", err)
	}
	return app.Use(cfg, ns, newClients)
}

func newClients(cfg *rest.Config) (ctrlclient.Client, kubernetes.Interface, error) {
	c, err := ctrlclient.New(cfg, ctrlclient.Options{Scheme: Scheme()})
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, cs, nil
}
