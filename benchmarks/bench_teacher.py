"""How good a teacher is each teacher context? The contrast signal of the base model on the
value's labeled pairs, per teacher context, with the specificity controls beside it.

For each teacher context (`dynalign.teacher.Teacher`): the contrast
log pi(y | teacher context, x) - log pi(y | default context, x), summed and per token, on the
calibration pairs (less any the teacher shows as exemplars) and on the held-out pairs, with 95%
Wilson intervals and the accuracy per worse-answer kind. The controls put other text in the
exemplar slot: the example HHH value's exemplars (good answers for an unrelated value, in the
same format) and neutral, value-free factual answers of the same length. A teacher that wins
only on "generic" pairs, or that a control matches, teaches style, not the value.

    .venv/bin/python benchmarks/bench_teacher.py --out runs/bench-teacher.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dynalign.api import Exemplar, RunContext, Teacher, ValueSpec, load_value_file, measure_signal
from dynalign.plugins import load_registry

HHH_FILE = Path(__file__).resolve().parents[1] / "examples/value-hhh/src/dynalign_value_hhh/hhh.toml"

# Value-free factual answers, about as long as CA's exemplars: the neutral control.
NEUTRAL = (
    (
        "How does a lighthouse lens work?",
        "Most traditional lighthouses use a Fresnel lens, designed by Augustin-Jean Fresnel in the 1820s. "
        "Instead of one thick curved lens, it uses concentric rings of glass prisms, each bending light "
        "from a single lamp into a narrow horizontal beam. This makes the lens much thinner and lighter "
        "than a solid one of the same power. "
        "The whole assembly often rotates on a bed of mercury or bearings, so ships see the beam as a regular flash.",
    ),
    (
        "Why are there tides twice a day?",
        "Tides come mainly from the Moon's gravity, which pulls slightly harder on the side of the Earth facing it "
        "than on the Earth's centre, and slightly less on the far side. The result is two bulges of water, one "
        "toward the Moon and one away from it. As the Earth turns, most coasts pass through both bulges each lunar "
        "day of about 24 hours and 50 minutes, so high tides arrive roughly 12 hours and 25 minutes apart.",
    ),
    (
        "Where does the metre come from?",
        "The metre was defined in France in the 1790s as one ten-millionth of the distance from the North Pole to "
        "the equator along the meridian through Paris, measured by a survey between Dunkirk and Barcelona. A "
        "platinum bar later served as the standard. In 1960 the definition changed to a number of wavelengths of "
        "light from krypton, and since 1983 the metre has been the distance light travels in a vacuum in "
        "1/299,792,458 of a second.",
    ),
    (
        "How do stars like the Sun end their lives?",
        "A star like the Sun fuses hydrogen into helium in its core for about ten billion years. When the core's "
        "hydrogen runs low, the core contracts and heats while the outer layers swell, and the star becomes a red "
        "giant. It then fuses helium into carbon and oxygen for a shorter time. Finally it sheds its outer layers "
        "as a glowing planetary nebula, leaving a hot, dense core called a white dwarf that slowly cools.",
    ),
)


def with_exemplars(value: ValueSpec, exemplars: list[tuple[str, str]]) -> ValueSpec:
    """The value with other text in the exemplar slot (a control)."""
    return value.model_copy(update={"exemplars": tuple(Exemplar(prompt=p, answer=a) for p, a in exemplars)})


def teachers(value: ValueSpec, hhh: ValueSpec) -> dict[str, tuple[ValueSpec, Teacher]]:
    """Each teacher context measured: (the value as the teacher sees it, the teacher)."""
    hhh_slot = with_exemplars(value, [(e.prompt, e.answer) for e in hhh.exemplars])
    return {
        "system prompt (today)": (value, Teacher()),
        "+ 4 CA exemplars, one per pillar": (value, Teacher(pick=(0, 2, 4, 6))),
        "+ 8 CA exemplars": (value, Teacher(exemplars=8)),
        "+ 4 HHH exemplars (control)": (hhh_slot, Teacher(exemplars=4)),
        "+ 4 neutral answers (control)": (with_exemplars(value, list(NEUTRAL)), Teacher(exemplars=4)),
    }


def measure(only: list[str] | None, done: dict[str, Any]) -> dict[str, Any]:
    """Per teacher context: tokens of its system message, and per split and aggregation the
    contrast's accuracy summary (with `accuracy_by_kind`)."""
    from dynalign_hf.backend import HFChatModel, HFOptions
    from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

    registry = load_registry()
    value, hhh = registry.get("value", "ca").obj, load_value_file(HHH_FILE)
    model = HFChatModel(HFOptions())
    handle = model.policy_handle()
    _, tokenizer = model.loaded()
    out: dict[str, Any] = {}
    for name, (spec, teacher) in teachers(value, hhh).items():
        if (only and name not in only) or name in done:
            continue
        spec = spec.with_teacher(teacher)
        row: dict[str, Any] = {"tokens": len(tokenizer(spec.teacher_prompt())["input_ids"])}
        for aggregation in ("sum", "mean"):
            signal = SelfRewarder(
                SelfRewardOptions(mode="contrast", aggregation=aggregation), RunContext(spec, registry)
            )
            signal.bind_policy(handle)
            for split, pairs in (("calibration", spec.choosing_pairs()), ("held_out", list(spec.held_out))):
                row[f"{split}/{aggregation}"] = measure_signal(signal, pairs)
                print(f"{name} {split} {aggregation}: {row[f'{split}/{aggregation}']['accuracy']:.3f}", flush=True)
        out[name] = row
    return out


def _pct(summary: dict[str, Any], interval: bool = True) -> str:
    low, high = summary["ci95"]
    return f"{summary['accuracy']:.0%} [{low:.0%}, {high:.0%}]" if interval else f"{summary['accuracy']:.0%}"


def markdown(results: dict[str, Any]) -> str:
    """The accuracy table and the per-kind table (held-out, per token)."""
    lines = [
        "| teacher context | tokens | calibration sum / mean | held-out sum | held-out mean (per token) |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for name, row in results.items():
        cal = f"{_pct(row['calibration/sum'])} / {_pct(row['calibration/mean'])} (n={row['calibration/sum']['n']})"
        held_out = f"{_pct(row['held_out/sum'])} | {_pct(row['held_out/mean'])}"
        lines.append(f"| {name} | {row['tokens']} | {cal} | {held_out} |")
    kinds = sorted({k for row in results.values() for k in row["held_out/mean"]["accuracy_by_kind"]})
    lines += ["", "| teacher context (per token) | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds)]
    for split in ("calibration", "held_out"):
        for name, row in results.items():
            by_kind = row[f"{split}/mean"]["accuracy_by_kind"]
            cells = " | ".join(f"{by_kind[k]:.0%}" if k in by_kind else "n/a" for k in kinds)
            lines.append(f"| {name}, {split.replace('_', '-')} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-teacher.json"))
    parser.add_argument("--only", action="append", help="Measure only this teacher context (repeatable).")
    args = parser.parse_args(argv)
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done.update(measure(args.only, done))  # contexts already in --out are kept, not measured again
    args.out.write_text(json.dumps(done, indent=2) + "\n")
    print(markdown(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
