"""dynalign built-in plugin (in progress)."""
