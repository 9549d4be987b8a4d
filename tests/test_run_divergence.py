import pytest

from experiments import run_divergence


def rows(losses, grad_norms=None):
  grad_norms = grad_norms or [1.0] * len(losses)
  return {25 * (i + 1): {"step": 25 * (i + 1), "loss": l, "grad_norm": g}
          for i, (l, g) in enumerate(zip(losses, grad_norms))}


def test_first_differing_step_and_windows():
  a = rows([0.5, 0.4, 0.3, 0.2])
  same = run_divergence.divergence(a, rows([0.5, 0.4, 0.3, 0.2]), window=50)
  assert same["first_differing_step"] is None and same["steps_compared"] == 4
  assert [w["max_abs_loss_diff"] for w in same["windows"]] == [0.0, 0.0]
  # the gradient norm parts first (step 50), the loss later (step 75)
  b = rows([0.5, 0.4, 0.35, 0.2], grad_norms=[1.0, 1.1, 1.0, 1.0])
  out = run_divergence.divergence(a, b, window=50)
  assert out["first_differing_step"] == 50
  assert out["windows"][0]["max_abs_loss_diff"] == 0.0
  assert out["windows"][1]["steps"] == "51-100"
  assert out["windows"][1]["mean_loss_b"] == pytest.approx(0.275)
  assert out["windows"][1]["max_abs_loss_diff"] == pytest.approx(0.05)


def test_runs_with_no_shared_step_are_rejected():
  with pytest.raises(ValueError, match="no logged step"):
    run_divergence.divergence(rows([0.5]), {100: {"step": 100, "loss": 1.0, "grad_norm": 1.0}}, 50)
