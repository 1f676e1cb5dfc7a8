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

## make test: the test suite, in two worker processes (pytest-xdist; experiments/speed.md)
test: $(STAMP)
	$(PY) -m pytest -q -n 2

## make bench: benchmarks that print measured speed ratios
bench: $(STAMP)
	$(PY) -m benchmarks.run

## make pretrained: rebuild the shipped pretrained encoder (kws_proto/model/pretrained/default) from
## experiments/configs/pretrained.yaml; needs the system's flite (apt-get install flite) for its
## corpus; resumable (times: experiments/pretrained.md)
pretrained: $(STAMP)
	$(PY) -m kws_proto.publish experiments/configs/pretrained.yaml

clean-venv:
	rm -rf $(VENV)
