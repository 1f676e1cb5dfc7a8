# Each target creates .venv when missing and installs the package into it (from setup.cfg).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

EWN    := efficientword-net==1.0.5

.PHONY: demo test bench pretrained ewn clean-venv

# the dev install also brings EfficientWord-Net's wheel (its tests use it), without the
# dependencies it declares for microphones (pyaudio needs PortAudio headers to build)
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(EWN)
	touch $(STAMP)

## make ewn: EfficientWord-Net's embedding in .venv (`kws-proto eval ewn`, the spotter's `ewn`):
## ONNX Runtime (the dev and `ewn` extras) and its 101 MB wheel with the model, without its
## microphone dependencies; elsewhere: pip install -e '.[ewn]' && pip install --no-deps $(EWN)
ewn: $(STAMP)
	$(PY) -m pip install --quiet --no-deps $(EWN)

## make demo: build the built-in corpus, train Sequential and ProtoRes, compare them
demo: $(STAMP)
	$(PY) -m kws_proto.demo

## make test: the test suite, in two worker processes (pytest-xdist; experiments/speed.md)
test: $(STAMP)
	$(PY) -m pytest -q -n 2

## make bench: benchmarks that print measured speed ratios
bench: $(STAMP)
	$(PY) -m benchmarks.run

## make pretrained: rebuild the shipped models: the trained member (kws_proto/model/pretrained/
## protores_synth) from experiments/configs/pretrained.yaml, the head on the Google speech
## embedding (.../gse_head) from experiments/configs/gse_head/gse_head.yaml, then the default (the member,
## the embedding and its head fused, centres from the centre half of speechocean762's speakers,
## with the background and the neighbours of its enrolment from the same speakers);
## needs the system's flite (apt-get install flite) for its corpus and $(SHARED); resumable
## (times: experiments/pretrained.md)
SHARED ?= ../shared/data
pretrained: $(STAMP)
	$(PY) experiments/fusion_split.py $(SHARED)/speechocean762/words data/so762-split
	$(PY) -m kws_proto.publish experiments/configs/pretrained.yaml --centre-data data/so762-split/centre

clean-venv:
	rm -rf $(VENV)
