# Two commands for a newcomer: `make demo` and `make test`. Both set up first.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
APT_PKGS  := espeak-ng sox
THREADS   ?= 2

.PHONY: install demo test test-slow bench clean sysdeps

# Installs the Debian packages (as root) or says how; creates .venv; installs the package.
# Idempotent: the pip step only re-runs when pyproject.toml changed.
install: sysdeps $(STAMP)

sysdeps:
	@missing=""; for p in $(APT_PKGS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || exit 1; \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/supernet run -c configs/run/quickstart.yaml --out runs/quickstart

test: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python -m pytest -q tests

test-slow: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python -m pytest -q -m slow tests

bench: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs
