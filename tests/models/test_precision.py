import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax import configlib
from sora_jax.data import tokenizer
from sora_jax.models import precision
from sora_jax.models.dit import VideoDiT
from tests.models.test_dit import small_model_cfg


def rounded(a):
  """a rounded to bfloat16 and back, in float64 for the reference products."""
  return np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32),
                    np.float64)


def operands():
  x = jax.random.normal(jax.random.key(0), (2, 5, 24))
  w = jax.random.normal(jax.random.key(1), (24, 7))
  g = jax.random.normal(jax.random.key(2), (2, 5, 7))
  return x, w, g


def test_matmul_is_the_product_of_bfloat16_operands_in_float32():
  x, w, _ = operands()
  out = precision.bf16_matmul(x, w)
  assert out.dtype == jnp.float32 and out.shape == (2, 5, 7)
  np.testing.assert_allclose(out, rounded(x) @ rounded(w), rtol=1e-5, atol=1e-5)
  # and it does round: the float32 product differs by bfloat16's precision, not float32's
  error = np.max(np.abs(np.asarray(out, np.float64) - np.asarray(x, np.float64) @ np.asarray(w)))
  assert 1e-3 < error < 0.2


def test_gradients_are_bfloat16_products_of_the_rounded_cotangent():
  x, w, g = operands()
  _, vjp = jax.vjp(precision.bf16_matmul, x, w)
  dx, dw = vjp(g)
  assert dx.dtype == dw.dtype == jnp.float32 and dx.shape == x.shape and dw.shape == w.shape
  gr = rounded(g)
  np.testing.assert_allclose(dx, gr @ rounded(w).T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw, np.einsum("bnk,bno->ko", rounded(x), gr), rtol=1e-5, atol=1e-5)


def test_model_sets_every_dense_layer_and_stays_close_to_float32():
  cfg = small_model_cfg()
  cfg.head_hidden = 64
  full = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  cfg.matmul_dtype = "bfloat16"
  half = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  linears = [m for _, m in nnx.iter_modules(half) if isinstance(m, nnx.Linear)]
  assert linears and all(m.dot_general is precision.bf16_dot_general for m in linears)
  assert all(m.dot_general is jax.lax.dot_general
             for _, m in nnx.iter_modules(full) if isinstance(m, nnx.Linear))
  # the zero-initialised output layers would hide any difference: give every weight a value
  params = jax.tree.map(lambda p: 0.1 * jax.random.normal(jax.random.key(3), p.shape),
                        nnx.state(full, nnx.Param))
  nnx.update(full, params)
  nnx.update(half, params)
  assert nnx.graphdef(half) == nnx.graphdef(VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(1)))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle", "a blue square"], 16))
  x = jax.random.normal(jax.random.key(4), (2, 4, 8, 8, 3))
  t = jnp.array([0.3, 0.8])
  a, b = full(x, t, text), half(x, t, text)
  assert b.dtype == jnp.float32
  relative = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
  assert 1e-4 < relative < 3e-2, relative


def test_model_gradients_stay_close_to_float32():
  """Through every layer of a DiT (custom VJP, attention, adaLN): the gradient of a loss."""
  cfg = small_model_cfg()
  models = {}
  for name in ("float32", "bfloat16"):
    cfg.matmul_dtype = name
    models[name] = VideoDiT(cfg, text_len=16, rngs=nnx.Rngs(0))
  params = jax.tree.map(lambda p: 0.1 * jax.random.normal(jax.random.key(5), p.shape),
                        nnx.state(models["float32"], nnx.Param))
  text = jnp.asarray(tokenizer.encode_batch(["a red circle"], 16))
  x = jax.random.normal(jax.random.key(6), (1, 4, 8, 8, 3))

  def grads(name):
    graphdef = nnx.graphdef(models[name])
    loss = lambda p: jnp.mean(jnp.square(nnx.merge(graphdef, p)(x, jnp.array([0.4]), text) - x))
    return jax.flatten_util.ravel_pytree(jax.jit(jax.grad(loss))(params))[0]

  a, b = grads("float32"), grads("bfloat16")
  assert bool(jnp.all(jnp.isfinite(b)))
  relative = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
  assert 1e-4 < relative < 5e-2, relative


def test_bad_matmul_dtype_rejected():
  with pytest.raises(ValueError, match="model.matmul_dtype='float16'"):
    configlib.load("configs/tiny_cpu.py", ["--config.model.matmul_dtype=float16"])
  with pytest.raises(ValueError, match="a dense layer's"):
    precision.bf16_dot_general(jnp.ones((2, 3)), jnp.ones((2, 3)), (((0,), (0,)), ((), ())))
