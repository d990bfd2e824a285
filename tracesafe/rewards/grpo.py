"""The reward where it is trained: a TRL ``GRPOTrainer`` reward function, and a local reward model as the
helpfulness scorer ``R_r``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .alphaalign import (
    HelpfulnessScorer,
    RefusalDetector,
    RewardParams,
    RewardParts,
    mentions_safety,
    score,
)


def _completion_text(c: Any) -> tuple[str, str | None]:
    """TRL completion -> (text, reasoning): a string, or a conversation whose last message is ours."""
    if isinstance(c, str):
        return c, None
    if isinstance(c, dict):
        c = [c]
    msg = c[-1]
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    return str(msg.get("content") or ""), reasoning


def _prompt_key(p: Any) -> str:
    if isinstance(p, str):
        return p
    import orjson

    return orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode()


def _prompt_text(p: Any) -> str:
    if isinstance(p, str):
        return p
    users = [m.get("content", "") for m in p if m.get("role") == "user"]
    return str(users[-1] if users else p[-1].get("content", ""))


class AlphaAlignReward:
    """AlphaAlign reward as a TRL reward function: ``reward(prompts, completions, label=..., **kw) -> list[float]``.

    TRL passes dataset columns as keyword arguments, so the dataset needs a label column (``label`` by
    default: harmful/benign, unsafe/safe, 1/0 or bool). Completions may be strings or conversations
    (lists of ``{"role", "content"}``; a ``reasoning_content`` field is used as the thinking). The
    rollouts of one prompt in the batch form the R_h normalisation group. ``last_parts`` keeps the
    components of the last call for logging.
    """

    def __init__(
        self,
        params: RewardParams = RewardParams(),
        *,
        label_key: str = "label",
        refusal_detector: RefusalDetector | None = None,
        safety_reasoning_detector: Callable[[str], bool] = mentions_safety,
        helpfulness_scorer: HelpfulnessScorer | None = None,
    ):
        self.__name__ = "alphaalign_reward"  # TRL names a reward function's log column by __name__
        self.params = params
        self.label_key = label_key
        self.refusal_detector = refusal_detector
        self.safety_reasoning_detector = safety_reasoning_detector
        self.helpfulness_scorer = helpfulness_scorer
        self.last_parts: list[RewardParts] = []

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        labels = kwargs.get(self.label_key)
        if labels is None:
            raise ValueError(f"AlphaAlign reward needs the dataset column {self.label_key!r} (harmful/benign)")
        texts, reasonings = zip(*(_completion_text(c) for c in completions)) if completions else ((), ())
        # A string prompt is the rendered text: a template-forced <think> at its end is seen by the splitter.
        rendered = [p if isinstance(p, str) else None for p in prompts]
        self.last_parts = score(
            list(texts),
            list(labels),
            groups=[_prompt_key(p) for p in prompts],
            prompts=[_prompt_text(p) for p in prompts],
            reasonings=list(reasonings),
            prompts_rendered=rendered,
            params=self.params,
            refusal_detector=self.refusal_detector,
            safety_reasoning_detector=self.safety_reasoning_detector,
            helpfulness_scorer=self.helpfulness_scorer,
        )
        return [p.reward for p in self.last_parts]


def alphaalign_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """AlphaAlign-Zero reward (no helpfulness term) with the defaults; see :class:`AlphaAlignReward`."""
    return AlphaAlignReward()(prompts, completions, **kwargs)


_GENERATIVE = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForMaskedLM")  # heads that are no reward


class RewardModelScorer:
    """Helpfulness ``R_r`` from a local sequence-classification reward model (the paper used
    FsfairX-LLaMA3-RM-v0.1): the score of the (prompt, answer) chat is the model's first logit."""

    def __init__(self, path: str | os.PathLike, *, batch_size: int = 8, max_length: int = 2048,
                 device: str | None = None, trust_remote_code: bool = False):  # fmt: skip
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        archs = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).architectures or []
        if archs and all(a.endswith(_GENERATIVE) for a in archs):
            # transformers would load it anyway, with a score head drawn at random: R_h would be noise.
            raise ValueError(f"{path}: not a sequence-classification reward model (its config names "
                             f"{', '.join(archs)}); its score head would be random")  # fmt: skip
        self.tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tok.pad_token_id
        self.tok.padding_side = "right"  # sequence classifiers pool the last non-pad token
        self.batch_size, self.max_length = batch_size, max_length
        self.name = str(path)

    def render(self, prompt: str, answer: str) -> str:
        chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        if self.tok.chat_template:
            return self.tok.apply_chat_template(chat, tokenize=False)
        return f"User: {prompt}\nAssistant: {answer}"

    def __call__(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        import torch

        out: list[float] = []
        texts = [self.render(p, a) for p, a in zip(prompts, answers)]
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tok(texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                               truncation=True, max_length=self.max_length, add_special_tokens=False)  # fmt: skip
                logits = self.model(**enc.to(self.device)).logits
                out.extend(logits[:, 0].float().cpu().tolist())
        return out
