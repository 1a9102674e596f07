# Kubetrace Operator — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := libcurl4-openssl-dev libssl-dev libsystemd-dev libsimdjson-dev pkg-config
# For the tests: systemd-analyze, journalctl and systemd-journald; curl for the HTTP endpoints;
# promtool (prometheus) for the alert rules; age for backup interop; tmux for the status screen;
# strace to see the mode secret files are created with.
TEST_APT_PACKAGES := systemd curl prometheus age tmux strace
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps test-deps build test run bench devcluster monitoring-check chaos soak fuzz fuzz-smoke test-tsan test-asan clean

## deps: install the Debian packages the C shims need (once; `apt-get update` first).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

## test-deps: the second clients the devcluster is tested with (kubectl ships with these machines),
## and the real systemd tools the run-mode tests use.
test-deps: deps
	@missing=""; for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@python3 -c 'import kubernetes' 2>/dev/null || python3 -m pip install -q kubernetes
	@command -v kubernetes-validate >/dev/null || python3 -m pip install -q kubernetes-validate
	@command -v checkov >/dev/null || python3 -m pip install -q checkov
	@command -v kubectl >/dev/null || { echo "make test: kubectl is required (it ships with these machines)"; exit 1; }

## build: debug build of every product.
build: deps
	$(SWIFT) build

## test: build everything, then run every test (unit and integration, on loopback; the chaos
## runs and fuzz replays among them), then each fuzz target briefly so none can rot, then the
## KubeRuntime DocC catalog with warnings as errors (a broken symbol link fails the run).
## Three phases, so the real-time suites (token refresh on 20 s tokens, leader handover within
## 5 s, chaos, watchdog cadence, the repair limiter's 10 s window) do not share two cores with the integration suites that start
## devclusters, operators, kubectl and strace: first those, then the real-time ones, then the
## kube-apiserver fidelity suites (each starts devclusters, operators and kubectl).
FIDELITY_SUITES := ConformanceTests|KubectlFidelityTests|ZeroValueBookmarkTests
REALTIME_SUITES := RefreshServiceTests|LeaderElectionTests|ChaosTests|RunModeTests|AdversaryTests|InClusterDeploymentTests
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '$(FIDELITY_SUITES)|$(REALTIME_SUITES)'
	$(SWIFT) test --skip-build --filter '$(REALTIME_SUITES)'
	$(SWIFT) test --skip-build --filter '$(FIDELITY_SUITES)'
	$(MAKE) fuzz-smoke
	$(MAKE) docs

## chaos: seeded faults against the whole running operator; SEED= replays a run, CHAOS_S= its seconds.
CHAOS_S ?= 60
chaos: test-deps
	$(SWIFT) build --product kubetrace-operator
	$(SWIFT) build --product kubetrace-chaos
	"$$($(SWIFT) build --show-bin-path)/kubetrace-chaos" --duration $(CHAOS_S) $(if $(SEED),--seed $(SEED)) --verbose

## soak: the chaos mix for DURATION seconds (default 600), then its summary (also .build/soak.json).
DURATION ?= 600
soak: test-deps
	$(SWIFT) build --product kubetrace-operator
	$(SWIFT) build --product kubetrace-chaos
	"$$($(SWIFT) build --show-bin-path)/kubetrace-chaos" --duration $(DURATION) $(if $(SEED),--seed $(SEED)) --summary .build/soak.json

## fuzz: every libFuzzer target in Fuzz/ for FUZZ_S seconds each (default 60).
FUZZ_S ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_S)

fuzz-smoke: deps
	scripts/fuzz.sh 3

## test-tsan / test-asan: the unit and integration tests under ThreadSanitizer / AddressSanitizer
## (their own build folders, so the normal build is not redone). A sanitizer report in the test
## process or in a spawned binary (exit 66) fails the run; real-time windows are stretched.
test-tsan: test-deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	KUBETRACE_TEST_TIME_SCALE=4 $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan

test-asan: test-deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	KUBETRACE_TEST_TIME_SCALE=2 ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

## run: the operator against the current kubeconfig's cluster, or the embedded devcluster when there is none.
run: build
	@scripts/dev-run.sh "$$($(SWIFT) build --show-bin-path)"

## devcluster: the embedded local Kubernetes API (state in .devcluster/); as root with a node
## that runs Pods as real processes, the operator's image mapped to the operator just built.
devcluster: build
	@scripts/devcluster.sh "$$($(SWIFT) build --show-bin-path)"

## bench: benchmarks, release build; prints a table and writes $(BENCH_OUT) (default .build/bench.json).
## The release build links the Swift runtime and Foundation statically, as a container image would
## (4-6 MB less resident than a dynamically linked build).
RELEASE_FLAGS ?= --static-swift-stdlib
## Installs what it compares against when missing: valgrind (apt), lightkube and kopf (pip).
bench: deps
	@dpkg -s valgrind >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind; }
	@python3 -c 'import kubernetes' 2>/dev/null || python3 -m pip install -q kubernetes
	@python3 -c 'import lightkube' 2>/dev/null || python3 -m pip install -q lightkube
	@python3 -c 'import kopf' 2>/dev/null || python3 -m pip install -q kopf
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product kubetrace-bench
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product kubetrace-devcluster
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product kubetrace-operator
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product kubetrace-instructions
	bin="$$($(SWIFT) build -c release $(RELEASE_FLAGS) --show-bin-path)"; rm -f "$${BENCH_OUT:-.build/bench.json}"; \
	"$$bin/kubetrace-bench" decode && "$$bin/kubetrace-bench" instructions && "$$bin/kubetrace-bench" replay && \
	"$$bin/kubetrace-bench" devcluster && "$$bin/kubetrace-bench" repair && \
	"$$bin/kubetrace-bench" operator

## docs: the KubeRuntime DocC catalog (Sources/KubeRuntime/KubeRuntime.docc) as a static site
## in .build/docs/KubeRuntime (open index.html through any static file server).
.PHONY: docs
docs: deps
	mkdir -p .build/docs
	$(SWIFT) package --allow-writing-to-directory .build/docs generate-documentation --target KubeRuntime \
	  --disable-indexing --transform-for-static-hosting --warnings-as-errors --output-path .build/docs/KubeRuntime

## monitoring-check: promtool check rules + promtool test rules on deploy/monitoring/.
monitoring-check: test-deps
	scripts/check-monitoring.sh

clean:
	rm -rf .build .build-tsan .build-asan Fuzz/.build .devcluster
