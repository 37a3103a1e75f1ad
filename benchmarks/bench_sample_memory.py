"""Peak memory of sampling under a long teacher context: the eval's gap-closed base samples.

Draws `--samples` answers of 64 tokens for each of the value's first `--prompts` prompts under
the teacher context with `--exemplars` exemplar answers (CA: 8 exemplars make each prompt about
1,170 tokens), as `gap closed` does on a first run, and prints the process's peak RSS and the
wall time. Run it once per code version, each in a fresh process:

    .venv/bin/python benchmarks/bench_sample_memory.py --exemplars 8
"""

from __future__ import annotations

import argparse
import resource
import time

from dynalign.api import GenerationParams, Teacher, with_system
from dynalign.plugins import load_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--value", default="ca")
    parser.add_argument("--exemplars", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    from dynalign_hf.backend import HFChatModel, HFOptions

    value = load_registry().get("value", args.value).obj.with_teacher(Teacher(exemplars=args.exemplars))
    model = HFChatModel(HFOptions())
    model.completion_logprobs([[{"role": "user", "content": "Hi."}]], ["Hello."])  # loads the model first
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    prompted = [with_system([{"role": "user", "content": p.prompt}], value.teacher_prompt()) for p in value.prompts]
    began = time.perf_counter()
    model.chat(prompted[: args.prompts], GenerationParams(max_new_tokens=64, temperature=1.0, n=args.samples, seed=0))
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"{args.prompts} prompts x {args.samples} samples, teacher + {args.exemplars} exemplars: {seconds:.1f} s, "
        f"peak RSS {peak:.2f} GB (model loaded: {loaded:.2f} GB)"
    )


if __name__ == "__main__":
    main()
