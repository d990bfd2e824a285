"""The safety subspace mask: the safety loss on the safety data, and the mask learned (Concrete relaxation)
or scored (one gradient pass) against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .fusion import apply_mask
from .inputs import RealignConfig, SafetyExample

# ----------------------------------------------------------------------------- safety loss


def encode(tokenizer, examples: Sequence[SafetyExample], max_length: int) -> list[dict[str, Any]]:
    """Token ids of prompt + response with the prompt positions masked (-100) out of the loss."""
    import torch

    def prefix(prompt: str) -> list[int]:
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = prompt + "\n"
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def pair(p_ids: list[int], response: str, e: SafetyExample, what: str):
        r_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if not r_ids:  # e.g. a folder without its tokenizer files: transformers builds an empty one
            raise ValueError(f"{e.where}: the tokenizer encodes the {what} to no tokens (is it the model's tokenizer?)")
        if tokenizer.eos_token_id is not None:
            r_ids = r_ids + [tokenizer.eos_token_id]
        if len(p_ids) >= max_length:  # the shifted loss reads position P (the first response token) when P < L
            raise ValueError(f"{e.where}: the prompt takes {len(p_ids)} tokens, so none of the {what} is within "
                             f"--max-length {max_length}; raise --max-length or shorten the prompt")  # fmt: skip
        ids = (p_ids + r_ids)[:max_length]
        labels = ([-100] * len(p_ids) + r_ids)[:max_length]
        return torch.tensor(ids), torch.tensor(labels)

    out = []
    for e in examples:
        p_ids = prefix(e.prompt)
        item = dict(zip(("ids", "labels"), pair(p_ids, e.response, e, "safe response")))
        if e.rejected is not None:
            item.update(zip(("rej_ids", "rej_labels"), pair(p_ids, e.rejected, e, "rejected response")))
        out.append(item)
    return out


def _pad(seqs, value):
    import torch

    n = max(len(s) for s in seqs)
    return torch.stack([torch.cat([s, s.new_full((n - len(s),), value)]) for s in seqs])


def _logprob_sums(model, params, items, ids_key, labels_key):
    """Sum of response-token log-probabilities per example, and their token counts."""
    import torch
    from torch.func import functional_call

    ids = _pad([it[ids_key] for it in items], 0)
    labels = _pad([it[labels_key] for it in items], -100)
    attn = _pad([torch.ones_like(it[ids_key]) for it in items], 0)
    logits = functional_call(model, params, args=(), kwargs={"input_ids": ids, "attention_mask": attn}).logits
    logits, target = logits[:, :-1].float(), labels[:, 1:]
    valid = target != -100
    lp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * valid).sum(-1), valid.sum(-1)


def safety_loss(model, params, items, *, beta: float = 0.1, ref: Any = None):
    """Mean token NLL of the safe responses, or the DPO loss when the items carry rejected responses."""
    import torch.nn.functional as F

    chosen, n_tok = _logprob_sums(model, params, items, "ids", "labels")
    if "rej_ids" not in items[0]:
        return -chosen.sum() / n_tok.sum().clamp(min=1)
    rejected, _ = _logprob_sums(model, params, items, "rej_ids", "rej_labels")
    ref_c, ref_r = ref if ref is not None else (chosen.detach(), rejected.detach())
    return -F.logsigmoid(beta * ((chosen - ref_c) - (rejected - ref_r))).mean()


# ----------------------------------------------------------------------------- masks


def _batches(n: int, batch_size: int, steps: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(n, generator=g).tolist()
        yield order[:batch_size]
        order = order[batch_size:]


def ref_logprobs(model, params, items):
    import torch

    if "rej_ids" not in items[0]:
        return None
    with torch.no_grad():
        c, _ = _logprob_sums(model, params, items, "ids", "labels")
        r, _ = _logprob_sums(model, params, items, "rej_ids", "rej_labels")
    return c, r


def _concrete_sample(logits, temperature: float):
    """A reparameterised RelaxedBernoulli(temperature, logits) draw, written out (2.5x faster on CPU than
    ``torch.distributions``): ``sigmoid((logits + log u - log(1 - u)) / temperature)``, u ~ U(0, 1)."""
    import torch

    eps = torch.finfo(logits.dtype).eps
    u = torch.rand_like(logits).clamp_(eps, 1 - eps)
    return torch.sigmoid((logits + u.log() - (-u).log1p()) / temperature)


def learn_mask(model, aligned, delta, names, items, cfg: RealignConfig, rescale: bool):
    """Train the SOMF Concrete mask logits on the safety loss; returns (logits, per-step losses)."""
    import torch

    torch.manual_seed(cfg.seed)
    logits = {n: torch.zeros_like(aligned[n], requires_grad=True) for n in names}
    fixed = {n: aligned[n] + delta[n] for n in aligned if n not in logits}
    ref = ref_logprobs(model, {**fixed, **{n: aligned[n] + delta[n] for n in names}}, items)
    opt = torch.optim.Adam(logits.values(), lr=cfg.lr)
    losses = []
    for batch in _batches(len(items), cfg.batch_size, cfg.steps, cfg.seed):
        params = dict(fixed)
        for n, lg in logits.items():
            m = _concrete_sample(lg, cfg.temperature)
            params[n] = aligned[n] + apply_mask(delta[n], m, rescale)
        sub_ref = None if ref is None else (ref[0][batch], ref[1][batch])
        loss = safety_loss(model, params, [items[i] for i in batch], beta=cfg.beta, ref=sub_ref)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {n: lg.detach() for n, lg in logits.items()}, losses


def score_mask(model, aligned, delta, names, items, cfg: RealignConfig):
    """Keep scores ``-g * delta`` from the safety-loss gradient ``g`` at the unmasked fused model."""
    import torch

    fused = {n: (aligned[n] + delta[n]).requires_grad_(n in names) for n in aligned}
    ref = ref_logprobs(model, fused, items)
    for start in range(0, len(items), cfg.batch_size):
        idx = list(range(start, min(start + cfg.batch_size, len(items))))
        sub_ref = None if ref is None else (ref[0][idx], ref[1][idx])
        loss = safety_loss(model, fused, [items[i] for i in idx], beta=cfg.beta, ref=sub_ref)
        (loss * len(idx) / len(items)).backward()
    return {n: -(fused[n].grad * delta[n]) if fused[n].grad is not None else torch.zeros_like(delta[n]) for n in names}
