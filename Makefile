# Every target creates .venv when it is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench prometheus clean

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
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	else echo "prometheus is not installed and apt-get is not usable here: monitoring stays off (apt-get install prometheus)"; fi

demo: $(STAMP) prometheus
	$(BIN)/troupe demo

test: $(STAMP) prometheus
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check shared tests functions bench
	$(BIN)/mypy

# ciw (a queue simulation) is a baseline of bench/capacity.py only: the bench extra.
bench: $(STAMP) prometheus
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .troupe .pytest_cache .mypy_cache .ruff_cache
