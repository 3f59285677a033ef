# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
PARAMS_ARGS = --text recipes/configs/architectures/bert-base-uncased.json \
              --vision deit_base_patch16_224 --img-size 256 --embed-dim 256 --no-pretrained

.PHONY: install demo test

install:
	$(PYTHON) -m pip install -q -e '.[dev]'

demo: install
	$(PYTHON) -m mlilt.cli params $(PARAMS_ARGS)

test: install
	$(PYTHON) -m pytest -q
