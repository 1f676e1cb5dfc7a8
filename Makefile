# Each target creates .venv when missing and installs the package into it (from setup.cfg).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench pretrained clean-venv

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: build the built-in corpus, train Sequential and ProtoRes, compare them
demo: $(STAMP)
	$(PY) -m kws_proto.demo

## make test: the test suite
test: $(STAMP)
	$(PY) -m pytest -q

## make bench: benchmarks that print measured speed ratios
bench: $(STAMP)
	$(PY) -m benchmarks.run

## make pretrained: rebuild the shipped pretrained encoder (kws_proto/models/default) from
## experiments/configs/pretrained.yaml; resumable, ~1 h on 2 cores
pretrained: $(STAMP)
	$(PY) -m kws_proto.publish experiments/configs/pretrained.yaml

clean-venv:
	rm -rf $(VENV)
