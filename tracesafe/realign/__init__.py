"""SOMF safety realignment: fuse an aligned model with the safety-masked task vectors of fine-tuned ones.

Source: Yi, Zheng, Wang, Wang, He, "A safety realignment framework via subspace-oriented model fusion
for large language models" (arXiv:2405.09055, Knowledge-Based Systems 2024) and its code
(github.com/xinykou/safety_realignment: ``llmtuner/model/modeling.py`` FTMaskModel,
``llmtuner/model/concrete_mask.py``, ``tasks/task_arithmetic.py``):

1. Task vectors: ``delta_i = theta_i - theta_aligned`` for each fine-tuned model i.
2. Fusion of several: task arithmetic, ``delta = sum_i lambda_i delta_i`` (one model: ``delta_1``).
3. Safety subspace mask: one shared mask ``m`` over the parameters, learned on safety data with
   the model frozen. ``m`` is a Concrete (relaxed Bernoulli, temperature 0.5) sample of per-entry
   logits initialised at 0, and the masked task vector is rescaled per tensor:
   ``delta (.) m / mean(m)``. Entries where ``m = 0`` are the safety subspace: they return to the
   aligned weights.
4. Realigned model: ``theta = theta_aligned + delta (.) m / mean(m)`` with the binarised mask.

What differs from the paper (CPU budget, and the data this tool is given):
- Loss: the paper trains the mask with DPO on PKU-SafeRLHF preference pairs. Here the safety data is
  harmful prompt + safe response pairs, and the loss is the NLL of the safe response; when the file
  also has a ``rejected`` (unsafe) response, DPO is used (beta 0.1) with the unmasked fused model
  as the reference.
- Schedule: ``steps`` Adam steps (default 50, lr 1e-2, batch 4) instead of ~1 epoch of 5k pairs at
  lr 1e-3, batch 16.
- Binarisation: the paper's binary mask is a random draw (``RelaxedBernoulli.sample() > 0.5``); here
  it is deterministic: by default (``mask_ratio = 0.1``) exactly the fraction ``r`` of entries with the
  lowest logits is reverted; ``mask_ratio=None`` keeps where ``sigmoid(logit) >= 0.5``.
- ``method="scored"`` (not in the paper) replaces training by one gradient pass: entry j's benefit
  of returning to the aligned value is ``g_j * delta_j`` (first-order drop of the safety loss, ``g``
  its gradient at the fused model); the safety subspace is the entries with positive benefit, or
  the top fraction ``r``.
- A tensor whose mask is all zero gets no task vector (the paper's ``0/0`` would write NaN).
- The paper masks LoRA weights or all weights; ``include`` (a regex on parameter names) limits the
  mask, and parameters outside it get the unmasked fused task vector.

Modules: ``inputs`` (safety data, settings), ``fusion`` (task-vector arithmetic), ``mask`` (safety loss,
learned or scored mask), ``driver`` (models in, realigned model out).
"""

from .driver import realign, realign_models
from .fusion import apply_mask, binarise, fuse, merge_task_vectors, task_vectors
from .inputs import RealignConfig, RealignResult, SafetyExample, load_safety_data
from .mask import encode, learn_mask, safety_loss, score_mask

__all__ = [
    "RealignConfig", "RealignResult", "SafetyExample", "apply_mask", "binarise", "encode", "fuse", "learn_mask",
    "load_safety_data", "merge_task_vectors", "realign", "realign_models", "safety_loss", "score_mask",
    "task_vectors",
]  # fmt: skip
