"""Flax NNX modules of sora_jax.

Parameters carry logical axis names only as metadata: placement on a mesh is decided once, by the
jitted init's out_shardings (train/state.py), so variables must not try to shard themselves eagerly
at creation (which would demand a mesh even for a CPU unit test).
"""

import flax

flax.config.update("flax_always_shard_variable", False)
