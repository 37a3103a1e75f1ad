"""dynalign: a language model aligns itself to an open-ended value, with no human labels.

The core defines the plugin kinds and the public API plugins import (`dynalign.api`), the
hooks plugins implement (`dynalign.hookspecs`), judging (`dynalign.judging`), plugin discovery,
config, opening a run (`dynalign.opening`), the round loop and the CLI.
"""

from importlib.metadata import PackageNotFoundError, version

from dynalign.hookspecs import hookimpl

try:
    __version__ = version("dynalign")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__", "hookimpl"]
