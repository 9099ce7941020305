# Two commands from a fresh clone: `make demo` and `make test`. No GPU, no hub access needed.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: letting pip pick torch pulls CUDA builds. Never torchvision on CPU machines.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/srpo demo

test: install
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal

clean:
	rm -rf runs .pytest_cache
