"""Muon: momentum orthogonalised by a Newton-Schulz iteration, for a model's hidden matrices.

Each update of a matrix parameter is its Nesterov momentum with every singular value pushed to
about 1 (Jordan et al. 2024, modded-nanogpt), then scaled so its RMS matches AdamW's (0.2 x
sqrt(max(fan_in, fan_out)), Liu et al. 2025), so an AdamW config's learning rate carries over.
Unlike optax.contrib.muon, the iteration runs in `ns_dtype` while the momentum stays float32:
bfloat16 is what modded-nanogpt uses on GPUs; on this CPU float32 is no slower for 256-wide
matrices (a step of configs/shapes_quality.py: 0.62 s against 0.66 s; AdamW's 0.40 s, so the
iteration is most of what Muon adds to a small-batch step).
"""

import jax
import jax.numpy as jnp
import optax

# Quintic Newton-Schulz coefficients of modded-nanogpt: fast to ~1, not exactly 1 (0.7-1.2).
NS_COEFFS = (3.4445, -4.7750, 2.0315)
RMS_MATCH = 0.2  # AdamW's typical update RMS (Liu et al. 2025)


def orthogonalize(g: jax.Array, steps: int = 5, dtype=jnp.float32) -> jax.Array:
  """U V^T of g = U S V^T, approximately, by `steps` Newton-Schulz iterations in `dtype`.

  One matrix at a time: stacking a DiT's equal-shaped kernels into one batched iteration was
  slower here (a step of configs/shapes_quality.py 0.69 s against 0.62 s)."""
  a, b, c = NS_COEFFS
  wide = g.shape[0] > g.shape[1]  # iterate on the short side: X X^T is the smaller square
  x = (g.T if wide else g).astype(dtype)
  x = x / (jnp.linalg.norm(x.astype(jnp.float32)) + 1e-7).astype(dtype)
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  x = x.astype(jnp.float32)
  return x.T if wide else x


def scale_by_muon(beta: float = 0.95, ns_steps: int = 5,
                  ns_dtype=jnp.float32) -> optax.GradientTransformation:
  """Nesterov momentum (float32), orthogonalised, RMS-matched to AdamW; 2-D parameters only."""

  def init(params):
    for p in jax.tree.leaves(params):
      if p.ndim != 2:
        raise ValueError(f"Muon takes 2-D parameters only; got shape {p.shape}")
    return {"mu": jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)}

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: beta * m + g.astype(jnp.float32), state["mu"], updates)

    def one(m, g):
      nesterov = g.astype(jnp.float32) + beta * m
      scale = RMS_MATCH * max(g.shape) ** 0.5
      return (scale * orthogonalize(nesterov, ns_steps, ns_dtype)).astype(g.dtype)
    return jax.tree.map(one, mu, updates), {"mu": mu}

  return optax.GradientTransformation(init, update)


def muon(learning_rate, weight_decay: float, beta: float = 0.95, ns_steps: int = 5,
         ns_dtype=jnp.float32) -> optax.GradientTransformation:
  """scale_by_muon, decoupled weight decay, then the learning rate (AdamW's order)."""
  return optax.chain(scale_by_muon(beta, ns_steps, ns_dtype),
                     optax.add_decayed_weights(weight_decay),
                     optax.scale_by_learning_rate(learning_rate))
