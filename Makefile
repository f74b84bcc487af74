# Every target sets itself up: a fresh clone needs only Python 3.11 and pip.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy safedeploy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest

demo: $(STAMP)
	bash demo/story.sh

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .safedeploy demo/.safedeploy .mypy_cache .ruff_cache .pytest_cache
