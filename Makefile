# Two commands do all the set-up on a fresh machine with only python3:
#   make test   creates .venv, installs the project with its test extra, runs the suite
#   make demo   creates .venv, installs, trains the tiny CPU config, samples prompts, evaluates
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := runs/demo

.PHONY: test demo install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Two pytest workers: most tests are bound by one-threaded XLA compiles; tests/parallel stays on
# one worker (tests/conftest.py groups it) so its 8-device fixture runs once.
test: $(STAMP)
	$(BIN)/python -m pytest tests -n 2 --dist loadgroup

demo: $(STAMP)
	$(BIN)/sora-jax train --config=configs/tiny_cpu.py --workdir=$(DEMO_DIR)
	$(BIN)/sora-jax sample --workdir=$(DEMO_DIR) --prompts configs/demo_prompts.txt \
	  --out $(DEMO_DIR)/samples --format mp4
	$(BIN)/sora-jax eval --workdir=$(DEMO_DIR)
	@echo "demo samples: $(abspath $(DEMO_DIR))/samples (*.mp4, sheet.png)"

clean:
	rm -rf $(VENV) runs data/tfds
