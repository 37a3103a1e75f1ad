"""Example third-party value: HHH (Helpful, Honest, Harmless), all data in hhh.toml."""

from importlib.resources import files

from dynalign import hookimpl
from dynalign.api import load_value_file


@hookimpl
def register_values(register):
    """Register the `hhh` value."""
    register(load_value_file(files(__name__) / "hhh.toml"))
