"""Built-in model backends `openai` (also any OpenAI-compatible server) and `anthropic`.

The SDKs are imported only when a backend first sends a request, so listing plugins stays fast.
"""

from dynalign import hookimpl
from dynalign_api.anthropic_backend import AnthropicChatModel
from dynalign_api.openai_backend import OpenAIChatModel


@hookimpl
def register_models(register):
    """Register `openai` (alias `openai-compatible`) and `anthropic` (alias `claude`)."""
    register(OpenAIChatModel)
    register(AnthropicChatModel)
