.DEFAULT_GOAL := help
PY ?= python3

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

install: ## install the package with test and dev extras (and the Debian packages the tests use)
	bash scripts/install-test-deps.sh

test: ## run the whole suite (unit, integration against real servers, e2e)
	$(PY) -m pytest -q

unit: ## run only the fast unit tests
	$(PY) -m pytest -q tests/unit

lint: ## ruff, formatting, mypy strict, import contracts
	ruff check operator tests bench
	ruff format --check operator tests bench
	mypy
	lint-imports

fmt: ## format and autofix
	ruff format operator tests bench
	ruff check --fix operator tests bench

crds: ## regenerate crds/ and the chart's CRDs from the API types
	$(PY) -m codepilot_operator.cli crd --output-file crds/codepilot.yaml
	cp crds/codepilot.yaml charts/codepilot-operator/files/crds/codepilot.yaml

docs: ## regenerate docs/api.md from the API types
	$(PY) -c "from codepilot_operator.api.reference import api_reference; open('docs/api.md','w').write(api_reference())"

dashboard: ## regenerate the chart's Grafana dashboard from render/dashboard.py
	$(PY) -c "from codepilot_operator.render.dashboard import DASHBOARD_FILE, dashboard_json; open('charts/codepilot-operator/dashboards/' + DASHBOARD_FILE, 'w').write(dashboard_json())"

goldens: ## rewrite golden files after an intended change of rendered output
	$(PY) -m pytest -q tests/unit --update-goldens

bench: ## run the benchmarks (results are printed, not asserted)
	$(PY) bench/render.py
	@for b in bench/fetch.py bench/reconcile.py; do [ -f $$b ] && $(PY) $$b || true; done

chart-lint: ## lint and render the Helm chart through the real Helm engine
	$(PY) -m pytest -q tests/integration/test_chart.py

.PHONY: help install test unit lint fmt crds docs dashboard goldens bench chart-lint
