"""Matmul operand precision: parameters and activations in float32, the operands of every dense
layer's matmul rounded to bfloat16, the products accumulated in float32.

This is what a TPU does with a float32 matmul at its default precision (one bfloat16 pass), so a
run that sets `model.matmul_dtype = "bfloat16"` trains on CPU with the numerics it would have on a
pod. On a CPU with AMX (this project's 2-core Xeon) a bfloat16 matmul of the DiT's sizes runs
4-5x faster than a float32 one (1,846 against 388 GFLOP/s at [1280, 256] x [256, 1024], measured
2026-12-05), while `model.dtype = "bfloat16"` (activations too) made the step slower: its
elementwise ops do not run faster in bfloat16 here. Only the dense layers' matmuls change;
attention's own products, norms, softmax, GELU and the loss stay float32. The backward pass rounds
the incoming gradient to bfloat16 too, as mixed precision does, so both its matmuls (input and
weight gradients) run at the same speed as the forward one.
"""

import jax
import jax.numpy as jnp
from flax import nnx

MATMUL_DTYPES = ("float32", "bfloat16")


def check(matmul_dtype: str) -> str:
  if matmul_dtype not in MATMUL_DTYPES:
    raise ValueError(f"model.matmul_dtype={matmul_dtype!r}; must be one of {MATMUL_DTYPES}")
  return matmul_dtype


def _lead(ndim: int) -> tuple:
  return tuple(range(ndim - 1))


@jax.custom_vjp
def bf16_matmul(x, w):
  """x [..., K] @ w [K, N] with bfloat16 operands, accumulated and returned in float32."""
  return _forward(x, w)[0]


def _forward(x, w):
  xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)  # cast once: the residuals reuse them
  out = jax.lax.dot_general(xb, wb, (((x.ndim - 1,), (0,)), ((), ())),
                            preferred_element_type=jnp.float32)
  # empty arrays carry the primal dtypes to the backward pass (residuals must be arrays)
  return out, (xb, wb, (jnp.zeros((0,), x.dtype), jnp.zeros((0,), w.dtype)))


def _backward(res, g):
  x, w, (x_like, w_like) = res
  g = g.astype(jnp.bfloat16)
  dx = jax.lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())),
                           preferred_element_type=jnp.float32)
  dw = jax.lax.dot_general(x, g, ((_lead(x.ndim), _lead(g.ndim)), ((), ())),
                           preferred_element_type=jnp.float32)
  return dx.astype(x_like.dtype), dw.astype(w_like.dtype)


bf16_matmul.defvjp(_forward, _backward)


def bf16_dot_general(x, w, dimension_numbers, precision=None, preferred_element_type=None,
                     out_sharding=None):
  """nnx.Linear's `dot_general` with bfloat16 operands; the result in x's dtype. A module-level
  function, so model graphs built twice compare equal (it is a static attribute)."""
  del precision, preferred_element_type  # the operands' precision is the point of this function
  if dimension_numbers != (((x.ndim - 1,), (0,)), ((), ())) or w.ndim != 2:
    raise ValueError(f"bf16_dot_general is a dense layer's x [..., K] @ w [K, N]; got "
                     f"{dimension_numbers} for shapes {x.shape}, {w.shape}")
  if out_sharding is not None:
    raise ValueError("bf16_dot_general takes no out_sharding: layers constrain their outputs")
  return bf16_matmul(x, w).astype(x.dtype)


def apply(model: nnx.Module, matmul_dtype: str) -> None:
  """Sets every nnx.Linear of `model` to multiply in `matmul_dtype`."""
  if check(matmul_dtype) == "float32":
    return
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.Linear):
      module.dot_general = bf16_dot_general
