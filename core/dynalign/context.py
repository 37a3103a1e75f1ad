"""`RunContext`, what a component may use of its run (defined in `dynalign.interfaces`)."""

from dynalign.interfaces import RunContext

__all__ = ["RunContext"]
