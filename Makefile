# Two commands do all the set-up on a fresh machine with only python3:
#   make test   creates .venv, installs the project with its test extra, runs the suite
#   make demo   creates .venv, installs, trains the tiny CPU config, samples prompts, evaluates
#   make vae    retrains the VAE the demo's DiT works in (~1 h here) and exports it like assets/vae_tiny
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := runs/demo
# `make demo` is to end within 20 minutes on a 2-core CPU whose speed drifts by a third over a
# day. Training gets what the other phases leave: counted from make's start, it stops
# (checkpointed, as on a preemption) by minute 18, which keeps 2 minutes for sampling and the eval
# (1:13-1:21 on 2026-12-03). At 1.7 steps/s its 1,600 steps end near minute 17:40.
DEMO_START := $(shell date +%s)
DEMO_TRAIN_UNTIL_S := 1080

.PHONY: test demo vae install clean

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

# The demo's DiT denoises latents of the shipped VAE (assets/vae_tiny): encode the clips once.
# Each phase prints the clock as it starts, so a slow demo shows where its minutes went.
demo: $(STAMP)
	@date +"[%T] encode-latents"
	$(BIN)/sora-jax encode-latents --config=configs/tiny_cpu.py
	@date +"[%T] train"
	$(BIN)/sora-jax train --config=configs/tiny_cpu.py --workdir=$(DEMO_DIR) \
	  --config.train.time_limit_minutes=$$($(BIN)/python -c \
	    "import time; print(round(max(1.0, ($(DEMO_START) + $(DEMO_TRAIN_UNTIL_S) - time.time()) / 60), 2))")
	@date +"[%T] sample"
	$(BIN)/sora-jax sample --workdir=$(DEMO_DIR) --prompts configs/demo_prompts.txt \
	  --out $(DEMO_DIR)/samples --format mp4
	@date +"[%T] eval"
	$(BIN)/sora-jax eval --workdir=$(DEMO_DIR)
	@date +"[%T] done"
	@echo "demo samples: $(abspath $(DEMO_DIR))/samples (*.mp4, sheet.png)"

vae: $(STAMP)
	$(BIN)/sora-jax train-vae --config=configs/vae_tiny.py --workdir=runs/vae_tiny
	$(BIN)/sora-jax export --workdir=runs/vae_tiny --out=runs/vae_tiny_export
	@echo "to ship it: rm -rf assets/vae_tiny && mv runs/vae_tiny_export assets/vae_tiny"

clean:
	rm -rf $(VENV) runs data/tfds
