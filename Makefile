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

# A new .venv takes about 6.1 GB (PyTorch's CUDA build and its NVIDIA libraries: the CPU wheel does
# not work with PyPI's torchaudio); below MIN_FREE_GB free the install stops before it starts,
# instead of pip failing half-way with "No space left on device".
MIN_FREE_GB ?= 7

$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt $(MIN_FREE_GB) ]; then \
	    echo "make install: $(CURDIR) has $$free GB free, under MIN_FREE_GB=$(MIN_FREE_GB); a new $(VENV) takes about 6.1 GB (PyTorch's CUDA build)."; \
	    echo "  Free disk space (old clones, runs/) and rerun, or set MIN_FREE_GB=N if you know it fits."; exit 1; \
	  fi; \
	  $(PY) -m venv $(VENV); \
	fi
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
