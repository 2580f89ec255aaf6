# The two set-up commands of the README. Each creates .venv (once), installs
# what it needs into it, and runs.
#   make demo   - synthetic OpenSRH data -> a hierarchical batch report
#   make test   - the whole test suite (what CI runs through .ci/run)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q \
          -c requirements/constraints.txt
DEPS   := setup.cfg pyproject.toml requirements/constraints.txt

.PHONY: demo test clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-%: $(DEPS) | $(PY)
	$(PIP) -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-demo
	$(PY) tools/misc/demo.py --work-dir work_dirs/demo

# pytest exits 5 when it collects no test: say so and fail loudly.
test: $(VENV)/.installed-tests
	$(PY) -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo 'pytest collected no tests (exit 5)'; fi; \
	exit $$rc

clean-venv:
	rm -rf $(VENV)
