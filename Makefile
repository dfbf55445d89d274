# rconn — redis-connection-operator
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

export PATH := $(PATH):/usr/local/go/bin
ROOT := $(shell pwd)
LOCALBIN := $(ROOT)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# golangci-lint, pinned, built from the module proxy into bin/ (make lint; .golangci.yml).
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
ENVTEST_ASSETS := $(LOCALBIN)/k8s
RIG_ASSETS := $(LOCALBIN)/rig
# helm for the chart tests and make release: built from the module proxy (hack/helm-assets.sh,
# which holds the pin), cached outside the work tree.
HELM := $(LOCALBIN)/helm
# The version stamped into bin/manager (manager --version, rconn_build_info). make release needs
# it on the command line: make release VERSION=v1.2.3.
VERSION ?= $(shell git describe --tags --match 'v*' --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Where make release puts its outputs, and the image repository it pins.
DIST ?= $(ROOT)/dist
IMAGE_REPO ?= ghcr.io/rconn-dev/rconn-manager
# Go test flags: override with e.g. make test GOTESTFLAGS='-run Foo -v'
GOTESTFLAGS ?=
GO_TEST_TIMEOUT ?= 25m
# How many test binaries make test runs at once (go test -p; its default is the core count):
# one more than the cores, since the packages mostly wait (redis failovers, control planes
# starting, polls): pkg/cluster used 49 s of CPU in 268 s, pkg/proxy 77 s in 285 s. No
# -parallel: Ginkgo fails its suites (api/v1, controllers) when it is set; pkg/cluster,
# pkg/proxy and pkg/client raise it in their TestMain instead (tb.WideParallel).
GO_TEST_P ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) + 1 )))

.PHONY: all
all: build

##@ General
.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from the markers (and copy them into charts/rconn/files).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@hack/chart-sync.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when the committed generated files differ from a fresh generation.
	@if [ -n "$$(git status --porcelain -- api config charts)" ]; then \
		echo "generated files are out of date; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config charts; git --no-pager diff --stat -- api config charts; exit 1; \
	fi

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: deps
deps: ## Install redis-server/redis-cli (Debian) when missing.
	@hack/install-deps.sh

.PHONY: envtest
envtest: ## Build/cache the envtest control plane (kube-apiserver from source, etcd, kubectl).
	@hack/envtest-assets.sh $(ENVTEST_ASSETS) >/dev/null

.PHONY: helm
helm: ## Build/cache the pinned helm (hack/helm-assets.sh) into bin/helm.
	@hack/helm-assets.sh $(LOCALBIN) >/dev/null

.PHONY: rig-assets
rig-assets: envtest ## Build/cache the real control plane rig (kube-controller-manager, kube-scheduler, kwok + its stage configs, CoreDNS) into bin/rig.
	@hack/rig-assets.sh $(RIG_ASSETS) >/dev/null

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (the linters of .golangci.yml) over every package, bench/ (its own module) included.
	$(GOLANGCI_LINT) run ./...
	cd bench && $(abspath $(GOLANGCI_LINT)) run --config ../.golangci.yml ./...

.PHONY: test
test: deps envtest rig-assets helm verify-generated vet lint ## Run every test (envtest, the rig, real redis-server, the chart).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./... -race -count=1 -p $(GO_TEST_P) -timeout $(GO_TEST_TIMEOUT) $(GOTESTFLAGS)

.PHONY: test-unit
test-unit: ## The fast inner loop: every test that needs no kube-apiserver, redis-server, node or root (go test -short; world helpers skip the rest), without -race.
	go test -short -count=1 ./... $(GOTESTFLAGS)

# Benchmarks: every run appends its `go test -bench` output to $(BENCH_OUT); bench/cmd/table
# turns all of it into one table (medians of BENCH_COUNT samples). BENCH_TIME is -benchtime per
# case; RCONN_BENCH_RB_REQUESTS is redis-benchmark's -n per sample (default 500000), and
# RCONN_BENCH_HOP_REQUESTS that of bench's ProxyHop (HAProxy vs rconn-proxy; default 200000,
# haproxy from `make deps`, its column skipped when missing outside CI). -p 1: one
# package at a time, so that no two benchmark binaries share the cores.
BENCH_COUNT ?= 3
BENCH_TIME ?= 500ms
BENCH_OUT ?= $(ROOT)/bench.out
BENCH_FLAGS = -run '^$$' -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) -timeout 60m

.PHONY: test-e2e
test-e2e: deps envtest rig-assets ## Only the end-to-end suite (test/e2e; make test runs it too).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./test/e2e -count=1 -v -timeout 15m $(GOTESTFLAGS)

.PHONY: test-helm
test-helm: deps envtest helm ## Only the chart, alert, dashboard and release tests (test/helm; make test runs them too).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./test/helm -count=1 -v -timeout 10m $(GOTESTFLAGS)

.PHONY: bench
bench: deps envtest rig-assets ## Run every benchmark (pkg/..., bench/ vs go-redis, rueidis, redis-benchmark and HAProxy), print one table.
	@: > $(BENCH_OUT)
	go test -p 1 ./pkg/... -bench . $(BENCH_FLAGS) | tee -a $(BENCH_OUT)
	cd bench && go test . -bench . $(BENCH_FLAGS) | tee -a $(BENCH_OUT)
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./test/scale -run '^$$' -bench . -benchtime 1x -timeout 60m | tee -a $(BENCH_OUT)
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./test/rollout -run '^$$' -bench . -benchtime 1x -timeout 60m | tee -a $(BENCH_OUT)
	@echo; cd bench && go run ./cmd/table < $(BENCH_OUT)

##@ Demo
# KEEP=1 leaves the demo running in the background; `make demo-stop` ends it.
# The Sentinel act runs after the Cluster act; SENTINEL=0 skips it, SENTINEL=only runs it alone.
KEEP ?=
SENTINEL ?=
.PHONY: demo
demo: deps envtest rig-assets ## Run rconn end to end on this machine (local control plane, Redis Cluster and Sentinel StatefulSets, manager, example apps). SENTINEL=0|only
	@# The flags the demo builds bin/manager with (internal/demo.Build, as the Dockerfile): that
	@# build then finds every shared package compiled (cold, it took 112 s on its own).
	@CGO_ENABLED=0 go build -trimpath -o bin/rconn-demo ./hack/demo
	@KEEP=$(KEEP) SENTINEL=$(SENTINEL) bin/rconn-demo

.PHONY: demo-stop
demo-stop: ## Stop a demo left running with KEEP=1.
	@if [ -x bin/rconn-demo ]; then bin/rconn-demo stop; else echo "no demo binary (bin/rconn-demo)"; fi

##@ Build
.PHONY: build
build: ## Build bin/manager, bin/rconn-proxy and bin/kubectl-rconn (VERSION=... stamps the version).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/manager .
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/rconn-proxy ./cmd/rconn-proxy
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-rconn ./cmd/kubectl-rconn

.PHONY: docker-build
docker-build: ## Build the image (needs a container engine; IMG=...). The same go build runs in `make build-static`.
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: docker-build-proxy
docker-build-proxy: ## Build the rconn-proxy image from the same Dockerfile (--target proxy; PROXY_IMG=...).
	docker build --build-arg VERSION=$(VERSION) --target proxy -t $(PROXY_IMG) .

.PHONY: build-static
build-static: ## The Dockerfile's build step, without a container engine: static linux binary in bin/manager-static.
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w $(LDFLAGS)" -o bin/manager-static .
	@if command -v file >/dev/null; then file bin/manager-static; fi

##@ Deployment
KUBECTL ?= kubectl
.PHONY: deploy
deploy: ## Deploy to the cluster of the current kubeconfig: make deploy IMG=registry/rconn:tag
	KUBECTL=$(KUBECTL) IMG=$(IMG) hack/deploy.sh deploy

.PHONY: undeploy
undeploy: ## Remove what deploy created (CRD included: every RedisConnection goes with it).
	KUBECTL=$(KUBECTL) hack/deploy.sh undeploy

.PHONY: render
render: ## Print the manifests deploy would apply: make render IMG=registry/rconn:tag
	@KUBECTL=$(KUBECTL) IMG=$(IMG) hack/deploy.sh render

##@ Release
.PHONY: release
release: helm ## make release VERSION=vX.Y.Z: dist/install.yaml, the packaged chart, the manager binary, SHA256SUMS (DIST=, IMAGE_REPO=).
	@if [ -z "$(VERSION)" ] || { [ "$(origin VERSION)" != "command line" ] && [ "$(origin VERSION)" != "environment" ]; }; then \
		echo "make release needs the version: make release VERSION=vX.Y.Z" >&2; exit 2; fi
	@HELM=$(HELM) KUBECTL=$(KUBECTL) hack/release.sh "$(VERSION)" "$(DIST)" "$(IMAGE_REPO)"

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run ./main.go

$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
