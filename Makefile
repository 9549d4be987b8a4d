# Two commands do all the set-up on a fresh machine with only python3:
#   make test   creates .venv, installs the project with its test extra, runs the suite
#   make demo   creates .venv, installs, trains the tiny CPU config, samples prompts, evaluates
#   make vae    retrains the VAE the demo's DiT works in (~1 h here) and exports it like assets/vae_tiny
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := runs/demo
# `make demo` is to end within 20 minutes on a 2-core CPU whose speed differs twofold between
# days (1.6-3.5 steps/s). Training gets what the other phases leave: counted from make's start,
# it sizes its schedule to end by minute 16:40 (train.fit_minutes: at most the config's 3,200
# steps, timed inside the warmup), and stops, checkpointed as on a preemption, at minute 18 if
# the machine slows later. That keeps 2 minutes for sampling and the eval (1:13-1:21 on
# 2026-12-03, 0:33 on 2026-12-05).
DEMO_START := $(shell date +%s)
DEMO_FIT_UNTIL_S := 1000
DEMO_TRAIN_UNTIL_S := 1080
MINUTES_LEFT = $$($(BIN)/python -c \
  "import time; print(round(max(1.0, ($(DEMO_START) + $(1) - time.time()) / 60), 2))")

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
	  --config.train.fit_minutes=$(call MINUTES_LEFT,$(DEMO_FIT_UNTIL_S)) \
	  --config.train.time_limit_minutes=$(call MINUTES_LEFT,$(DEMO_TRAIN_UNTIL_S))
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
