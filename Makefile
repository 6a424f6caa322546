# Every target creates .venv when it is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Waits up to 10 minutes for dpkg's lock instead of failing at once: another install
# (unattended-upgrades on a fresh machine, a second make) may hold it.
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

.PHONY: demo test lint bench prometheus kubectl chromium shellcheck clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e '.[local,test]'
	touch $(STAMP)

# Debian's prometheus, for the runtime's monitoring and the monitoring tests.
# Installed only when missing and when we may (root with apt-get); otherwise say why.
prometheus:
	@if command -v prometheus >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's prometheus"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends prometheus >/dev/null; \
		systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	else echo "prometheus is not installed and apt-get is not usable here: monitoring stays off (apt-get install prometheus)"; fi

# Debian's kubectl (kubernetes-client), for the tests that drive the control plane with it.
# Installed only when missing and when we may; otherwise those tests skip and say why.
kubectl:
	@if command -v kubectl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's kubernetes-client (kubectl)"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends kubernetes-client >/dev/null; \
	else echo "kubectl is not installed and apt-get is not usable here: the kubectl tests will skip (apt-get install kubernetes-client)"; fi

# Debian's headless Chromium and its driver, for the dashboard's browser tests; installed
# only when missing and when we may, as prometheus is. Without them those tests skip.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium and chromium-driver"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	else echo "chromium is not installed and apt-get is not usable here: the dashboard's browser tests skip (apt-get install chromium chromium-driver)"; fi

# Debian's shellcheck, for the workflow's `run:` scripts (what actionlint runs on them).
shellcheck:
	@if command -v shellcheck >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's shellcheck"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends shellcheck >/dev/null; \
	else echo "shellcheck is not installed and apt-get is not usable here: the workflow's scripts go unchecked (apt-get install shellcheck)"; fi

demo: $(STAMP) prometheus
	$(BIN)/troupe demo

test: $(STAMP) prometheus kubectl chromium shellcheck
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The workflows: GitHub's schema here, and their scripts through shellcheck in
# tests/manifests/test_workflows.py (actionlint's package cannot be installed offline).
lint: $(STAMP) shellcheck
	$(BIN)/ruff check shared tests functions bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yaml
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/manifests/test_workflows.py

# River (ADWIN, DDM) is a baseline of bench/drift.py only: the bench extra, installed here.
# ciw (a queue simulation) is a baseline of bench/capacity.py only: the bench extra.
bench: $(STAMP) prometheus
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

# requirements/<extra>.txt: what each function image installs, pinned with hashes. One
# lock per function extra, each with s3 (every image reads an s3:// store); s3.txt is the
# base alone. Local pip configuration is ignored, so the hashes are those of PyPI's files.
# Pins are kept while they satisfy pyproject.toml; `make lock LOCK_ARGS=--upgrade` refreshes.
LOCKS := data serve train monitor kube s3
lock: $(STAMP)
	@for extra in $(LOCKS); do \
		extras="--extra=$$extra"; [ $$extra = s3 ] || extras="$$extras --extra=s3"; \
		echo "requirements/$$extra.txt"; \
		env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet $(LOCK_ARGS) \
			--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
			--no-emit-find-links $$extras --output-file=requirements/$$extra.txt \
			pyproject.toml || exit 1; \
	done

clean:
	rm -rf $(VENV) .troupe .pytest_cache .mypy_cache .ruff_cache
