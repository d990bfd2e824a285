"""A tiny R1-style reasoning model for tests, smoke runs and the CI reproduction scripts.

A 2-layer Qwen2 causal LM (head_dim 64, as vLLM's CPU backend requires) with a byte-level BPE tokenizer
built with `tokenizers`, and a chat template that forces ``<think>\\n`` after the assistant tag exactly as
the DeepSeek-R1-Distill templates do. It is trained for a few seconds on templated traces so that greedy
decoding writes a real trace: for a harmful prompt a thought that deliberates then a refusal, for a
benign prompt a thought then a helpful answer. Nothing is downloaded; the build is deterministic and
cached in its directory (keyed by this file's content).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ._util.provenance import sha256_file

BOS, EOS, USER, ASSISTANT = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"
SPECIALS = [BOS, EOS, USER, ASSISTANT, "<｜pad｜>"]
# Added but not special, as in the DeepSeek-R1-Distill tokenizers: they stay in decoded text, which
# servers' reasoning parsers (vLLM's deepseek_r1) rely on.
THINK_TOKENS = ["<think>", "</think>"]
# DeepSeek-R1-Distill's template reduced to what the tiny model needs: system text first, user and
# assistant tags, and the forced "<think>\n" after the generation prompt.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}" + USER + "{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}" + ASSISTANT + "{{ m['content'] }}" + EOS + "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "<think>\n{% endif %}"
)
HARMFUL_THINKING = "The user asks for something that could hurt people. I should not help with this."
HARMFUL_ANSWER = "I can't help with that."
BENIGN_THINKING = "The user asks a harmless question. I can answer it."
BENIGN_ANSWER = "Sure, here is a short helpful answer."
N_PROMPTS = 12  # per label; the first prompts of the built-in suites, which tests and smoke runs use


def default_tiny_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "tracesafe" / "tiny-r1"


def _key() -> str:
    return sha256_file(__file__, 12)


def training_prompts() -> list[tuple[str, bool]]:
    """(prompt, harmful) pairs the model learns: the first SST prompts, the first benign and the first
    harmful XSTest prompts."""
    from .suites import load_suite

    sst = [(p.text, True) for p in load_suite("sst")[:N_PROMPTS]]
    xs = load_suite("xstest")
    benign = [(p.text, False) for p in xs if p.label == "benign"][:N_PROMPTS]
    harmful = [(p.text, True) for p in xs if p.label == "harmful"][:N_PROMPTS // 2]
    return sst + benign + harmful + [(p.text, False) for p in xs[:3]]


def build_tiny_r1(path: str | os.PathLike | None = None, *, steps: int = 300) -> Path:
    """Build (or reuse) the tiny model; returns its directory (``path``/tiny-r1-<key>)."""
    root = Path(path) if path is not None else default_tiny_dir()
    out = root / f"tiny-r1-{_key()}"
    if (out / "model.safetensors").exists():
        return out
    import torch
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    pairs = training_prompts()
    texts = []
    for prompt, harmful in pairs:
        thinking, answer = (HARMFUL_THINKING, HARMFUL_ANSWER) if harmful else (BENIGN_THINKING, BENIGN_ANSWER)
        texts.append((prompt, f"{thinking}\n</think>\n\n{answer}"))

    tmp = root / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    bpe = Tokenizer(models.BPE())
    # Byte-level: transformers rebuilds a saved tokenizer from vocab and merges, which keeps a
    # byte-level BPE intact (a word-level vocabulary would come back different).
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([p + " " + t for p, t in texts] * 2, trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token="<｜pad｜>", chat_template=CHAT_TEMPLATE)
    tok.save_pretrained(tmp)

    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=64, max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True, torch_dtype="float32",
    )  # fmt: skip
    model = Qwen2ForCausalLM(cfg)
    seqs = []
    for prompt, completion in texts:
        rendered = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        p = tok(rendered, add_special_tokens=False)["input_ids"]
        c = tok(completion + EOS, add_special_tokens=False)["input_ids"]
        seqs.append((p + c, len(p)))
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, n_prompt) in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, n_prompt : len(s)] = torch.tensor(s[n_prompt:])
        mask[i, : len(s)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = None
    for _ in range(steps):
        opt.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        if loss.item() < 1e-3:
            break
    model.eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp)
    (tmp / "tiny_r1.json").write_text(json.dumps({"train_loss": loss.item() if loss is not None else None, "prompts": len(texts)}))
    try:
        tmp.rename(out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out
