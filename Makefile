# kubatch developer entry points. Two set-up commands on a fresh machine: `make demo`, `make test`.
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KUBECONFIG_LOCAL := $(CURDIR)/.kubatch/kubeconfig
PYTEST_WORKERS ?= 3

.PHONY: system-deps venv test test-in-cluster test-unit test-integration lint fmt crds crds-check cluster-build cluster-up cluster-down images \
        cluster-status deploy-local operator demo kind-e2e bench bench-quick kueue-build clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

system-deps:
	@bash hack/system-deps.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fmt: venv
	$(VENV)/bin/ruff check --fix .

crds: venv
	$(PY) -m kubatch.api.crdgen

crds-check: venv
	$(PY) -m kubatch.api.crdgen --check

cluster-build:
	@bash hack/cluster/build.sh >/dev/null

# The real nodes' images (pause, busybox, the operator) as OCI archives, built without Docker and
# cached; prints their paths (`ctr -n k8s.io images import <path>` loads one).
images: venv
	$(PY) -m kubatch.devcluster.images

# REAL_NODES=N also starts N real nodes (kubelet + containerd, root only) with kube-proxy and cluster DNS.
REAL_NODES ?= 0
export REAL_NODES

cluster-up: venv
	@$(PY) -m kubatch.devcluster up --real-nodes $(REAL_NODES) >/dev/null

# The operator image built here, helm-installed on the real nodes (after `make cluster-up REAL_NODES=2`).
deploy-local: venv
	@$(PY) -m kubatch.devcluster deploy

cluster-down: venv
	@$(PY) -m kubatch.devcluster down

cluster-status: venv
	@$(PY) -m kubatch.devcluster status

# Unit tests need no cluster; integration tests bring the local cluster up themselves (or reuse it),
# with real nodes where the machine allows (root + containerd); then the in-cluster phase.
test: system-deps venv lint cluster-build
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider tests
	@$(MAKE) --no-print-directory test-in-cluster

# The tests marked in_cluster against the operator image deployed by the Helm chart on real nodes.
test-in-cluster: venv cluster-build
	@if why=$$($(PY) -m kubatch.devcluster real-nodes-check); then \
	  KUBATCH_TEST_OPERATOR=in-cluster $(VENV)/bin/pytest -n 2 --dist loadgroup -p no:cacheprovider \
	    -m in_cluster tests/integration; \
	else echo "in-cluster operator tests not run: $$why"; fi

test-unit: venv
	$(VENV)/bin/pytest -p no:cacheprovider tests/unit

test-integration: system-deps venv cluster-build
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider tests/integration

operator: venv cluster-up
	KUBECONFIG=$(KUBECONFIG_LOCAL) $(VENV)/bin/kubatch operator

demo: venv
	$(PY) -m kubatch.devcluster up --real-nodes $(REAL_NODES) >/dev/null
	$(VENV)/bin/kubatch dev demo --kubeconfig $(KUBECONFIG_LOCAL)

# For people with Docker: the same integration tests against a kind cluster.
kind-e2e: venv
	bash hack/kind-e2e.sh

# Kueue, the throughput scenario's peer, from its pinned Go module (hack/cluster/kueue.sh); when it
# does not build, that phase is skipped with the reason and the rest of the benchmark runs.
kueue-build:
	@bash hack/cluster/kueue.sh build >/dev/null || echo "kueue-build: Kueue did not build; the throughput scenario skips its Kueue phase"

bench: venv cluster-build kueue-build
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.run

bench-quick: venv cluster-build kueue-build
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.run --quick

clean: cluster-down
	rm -rf $(VENV) .kubatch
