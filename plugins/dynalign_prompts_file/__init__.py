"""Built-in prompt source `file`: prompts from JSONL, CSV, a `datasets` folder, or the value's
own bundled prompts."""

from dynalign import hookimpl
from dynalign_prompts_file.loader import FilePromptSource


@hookimpl
def register_prompt_generators(register):
    """Register the `file` prompt source (alias `dataset`)."""
    register(FilePromptSource)
