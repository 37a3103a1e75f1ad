"""Built-in prompt generator `agents` (goal, task, critic and refiner agents) and the
`dynalign prompts` commands."""

from dynalign import hookimpl
from dynalign_agents.cli import app as prompts_app
from dynalign_agents.generator import AgentsPromptGenerator


@hookimpl
def register_prompt_generators(register):
    """Register the `agents` prompt generator (alias `multi-agent`)."""
    register(AgentsPromptGenerator)


@hookimpl
def register_commands(register):
    """Register the `prompts` command group (generate, stats)."""
    register(prompts_app, name="prompts")
