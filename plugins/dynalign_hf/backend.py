"""The `hf` chat backend: loads lazily, once per process and folder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from dynalign.api import (
    DEFAULT_POLICY,
    ChatModel,
    Conversation,
    GenerationParams,
    ModelError,
    Options,
    PolicyHandle,
    read_json,
)

_loaded: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_lock = threading.Lock()


class HFOptions(Options):
    """Options of the `hf` backend."""

    model: str = Field(DEFAULT_POLICY, description="Local folder, HF hub id in the local cache, or embedded:<name>.")
    device: str = Field("cpu", description="torch device, e.g. cpu, cuda, cuda:1.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: int = Field(8, ge=1, description="Conversations per scoring (forward) batch.")
    generation_batch_size: int = Field(
        16,
        ge=1,
        description="Conversations per generate batch. Decoding reads every weight once per new token for the "
        "whole batch, so on a CPU 16 rows cost about 1.3x the time of 8 (BENCHMARKS.md). Long prompts get fewer "
        "per batch: a batch's key/value cache stays within 1 GiB (textgen.GENERATION_CACHE_BYTES).",
    )
    decode_products: Literal["auto", "torch", "weight-first", "packed"] = Field(
        "auto",
        description="How decoding's few-row matrix products run on a CPU: 'auto' times torch's order, weight first "
        "and (for the output layer) a oneDNN-packed weight on this model's weights once per machine and keeps the "
        "fastest (remembered in DYNALIGN_CACHE_DIR); or one way for all. All are exact up to float rounding "
        "(dynalign_hf.skinny; BENCHMARKS.md).",
    )
    allow_download: bool = Field(False, description="Let transformers fetch a hub id that is not cached.")


def resolve_model_path(model: str, allow_download: bool = False) -> str:
    """A local folder for `model`: the embedded conversion, the folder itself, or the hub cache."""
    from dynalign_hf.embedded import EMBEDDED_PREFIX, embedded_folder

    if model.startswith(EMBEDDED_PREFIX):
        return str(embedded_folder(model[len(EMBEDDED_PREFIX) :]))
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json; point at a saved Hugging Face model")
        config = read_json(path / "config.json", ModelError, "; save the model again")
        if not isinstance(config, dict):
            raise ModelError(f"{path / 'config.json'}: not a model config (a JSON object); save the model again")
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelError(f"model path {model} does not exist; give a local folder, a hub id or embedded:<name>")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, local_files_only=not allow_download)
    except Exception as exc:
        raise ModelError(
            f"model {model!r} is not in the local Hugging Face cache; download it first or set allow_download = true"
        ) from exc


def load_model(path: str, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) for a local folder, shared by every caller in this process."""
    key = (path, device, dtype)
    with _lock:
        if key not in _loaded:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
            model.eval()
            _loaded[key] = (model, tokenizer)
        return _loaded[key]


class HFChatModel(ChatModel):
    """A local Hugging Face causal LM with a chat template (default: embedded SmolLM2)."""

    name = "hf"
    aliases = ("transformers",)
    Options = HFOptions
    supports_token_probs: ClassVar[bool] = True
    options: HFOptions

    def pretrained_path(self) -> str:
        """The local folder holding the weights (converting the embedded GGUF if needed)."""
        return resolve_model_path(self.options.model, self.options.allow_download)

    def loaded(self) -> tuple[Any, Any]:
        """(model, tokenizer), loading on first use."""
        return load_model(self.pretrained_path(), self.options.device, self.options.dtype)

    def chat(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        """Sample `params.n` answers per conversation, in batches."""
        from dynalign_hf.textgen import generate

        model, tokenizer = self.loaded()
        options = self.options
        batch_size, products = options.generation_batch_size, options.decode_products
        return generate(model, tokenizer, conversations, params, batch_size, products=products)

    def next_token_probs(
        self, conversations: Sequence[Conversation], choices: Sequence[str], assistant_prefix: str = ""
    ) -> list[dict[str, float]]:
        """Probability of each single-token choice right after `assistant_prefix`."""
        from dynalign_hf.textgen import next_token_probs, render

        model, tokenizer = self.loaded()
        texts = [render(tokenizer, c, assistant_prefix) for c in conversations]
        return next_token_probs(model, tokenizer, texts, choices, self.options.batch_size)

    def completion_logprobs(
        self, conversations: Sequence[Conversation], completions: Sequence[str]
    ) -> list[list[float]]:
        """Per-token log-probabilities of each completion as the assistant's reply."""
        return self.policy_handle().completion_logprobs(conversations, completions)

    def policy_handle(
        self,
        model: Any = None,
        tokenizer: Any = None,
        reference: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> PolicyHandle:
        """A PolicyHandle on `model` (default: this backend's loaded weights, their own reference)."""
        from dynalign_hf.handle import HFPolicyHandle

        if model is None:
            model, tokenizer = self.loaded()
        return HFPolicyHandle(
            model,
            tokenizer,
            reference,
            self.options.batch_size,
            self.fingerprint(),
            generation_batch_size=self.options.generation_batch_size,
            decode_products=self.options.decode_products,
        )

    def fingerprint(self) -> str | None:
        """The model folder's identity (files, sizes, times) and the dtype it is computed in."""
        from dynalign.api import digest, folder_fingerprint

        return digest([folder_fingerprint(self.pretrained_path()), self.options.dtype])

    def describe(self) -> dict[str, Any]:
        """Backend, model as configured and the folder it resolved to."""
        return {"backend": self.name, "model": self.options.model}
