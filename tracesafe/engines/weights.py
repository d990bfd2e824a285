"""Where model weights come from, and which weights they are.

``resolve_weights``: a local directory, or the local Hugging Face cache. tracesafe itself never downloads
weights, so a run cannot silently fetch tens of GB or a different revision than the one recorded.

``fingerprint``: the one identity of local weights, written on every trace (``model_hash``) and every
model-judge verdict (``judge_config.weights``), so the same weights carry the same fingerprint in both.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .._util.provenance import sha256_file
from ..records import stable_id


def resolve_weights(model: str, revision: str | None = None, what: str = "model") -> str:
    """The directory holding ``model``: the path itself, or the cached snapshot of a hub id (at ``revision``)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if model.startswith(("/", "./", "../", "~")) or model.count("/") > 1:
        raise FileNotFoundError(f"{what} {model!r}: no such directory")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model, revision=revision, local_files_only=True)
    except Exception as e:
        raise ValueError(
            f"{what} {model!r} is not a local directory and not in the Hugging Face cache; tracesafe never "
            f"downloads weights itself: fetch it first (e.g. `hf download {model}`) or pass a path"
        ) from e


def model_identity(model: str, revision: str | None = None) -> dict[str, Any]:
    """Hashes of the model's config and weights index, and the hub revision when the path shows it, so a
    number can be traced to the exact weights. Weight files are not read (they can be hundreds of GB):
    the index, or each safetensors header, identifies them; ``.bin`` weights (no safetensors) by their
    names and sizes."""
    info: dict[str, Any] = {"model": model, "revision": revision}
    path = Path(model)
    if not path.is_dir():
        return info
    parts = path.resolve().parts
    if "snapshots" in parts:  # Hugging Face cache: .../snapshots/<commit>
        info["revision"] = revision or parts[parts.index("snapshots") + 1]
    for name in ("config.json", "generation_config.json", "model.safetensors.index.json"):
        f = path / name
        if f.exists():
            info[f"{name}_sha256"] = sha256_file(f)
    if not (path / "model.safetensors.index.json").exists():
        h = hashlib.sha256()
        shards = sorted(path.glob("*.safetensors"))
        for f in shards:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                h.update(f.name.encode() + fh.read(min(n, 1 << 26)))
        info["safetensors_headers_sha256"] = h.hexdigest()
        if not shards:  # pickled weights only: their headers say nothing, their sizes a little
            info["bin_files"] = [f"{f.name}:{f.stat().st_size}" for f in sorted(path.glob("*.bin"))]
    return info


def model_hash(identity: dict[str, Any]) -> str:
    """One short hash of a model identity's revision and file hashes (its path excluded: a copy moved
    elsewhere is the same model)."""
    return stable_id({k: v for k, v in identity.items() if k != "model"})


def fingerprint(model: str, revision: str | None = None) -> str:
    """The fingerprint of the weights at ``model`` (a resolved local directory)."""
    return model_hash(model_identity(model, revision))
