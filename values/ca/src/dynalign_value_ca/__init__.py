"""Collective Agency: one unified value with four inseparable pillars, as dynalign data."""

from importlib.resources import files

from dynalign import hookimpl
from dynalign.api import ValueSpec, load_value_file


def collective_agency() -> ValueSpec:
    """Load the Collective Agency value from this package's data."""
    return load_value_file(files(__name__) / "collective_agency.toml")


@hookimpl
def register_values(register):
    """Register `collective-agency` (alias `ca`)."""
    register(collective_agency())
