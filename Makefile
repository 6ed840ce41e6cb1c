# Two entry points; each installs what is missing first (tools/install.sh is
# idempotent and reuses the built mmcv wheel from ~/.cache/pyramidkd_mm).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pyramidkd_mm-installed

.PHONY: install demo test

install: $(STAMP)

$(STAMP): tools/install.sh setup.py pyproject.toml $(wildcard requirements/*.txt)
	bash tools/install.sh $(VENV)
	touch $@

demo: install
	$(PY) tools/demo.py

test: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest tests -q --durations=10
