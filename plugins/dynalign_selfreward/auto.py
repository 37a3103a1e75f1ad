"""`mode = "auto"`: measure each candidate self-signal on the value's calibration pairs, with
the reference (initial) policy, and keep the most accurate one."""

from __future__ import annotations

import json
from typing import Any

from dynalign.api import (
    PolicyHandle,
    Rewarder,
    RunContext,
    atomic_write_text,
    bind_policy,
    credibly_above_chance,
    describe_measure,
    measure_signal_once,
)

FALLBACK = "contrast-sum"  # no calibration pairs to measure on: the signal that measured best on CA
EXCLUDED_BY_DEFAULT = ("verdict",)  # a written verdict per answer costs minutes on a CPU
CHOICE_FILE = "self_reward_signal.json"


def candidate_names(names: list[str] | None, variants: dict[str, Rewarder]) -> list[str]:
    """The signals auto may pick, in preference order on ties."""
    if names is None:
        return [n for n in variants if n not in EXCLUDED_BY_DEFAULT]
    return list(names)  # checked against the known signals by the options


def choose_signal(
    variants: dict[str, Rewarder], candidates: list[str] | None, context: RunContext, policy: PolicyHandle
) -> tuple[Rewarder, dict[str, Any]]:
    """The chosen signal among `variants` (bound to `policy`) and a JSON-ready report of
    every measurement."""
    value = context.value
    names = candidate_names(candidates, variants)
    pairs = list(value.calibration)
    report: dict[str, Any] = {"value": value.name, "n_pairs": len(pairs), "candidates": names, "measured": {}}
    if not pairs:
        chosen_name = FALLBACK if FALLBACK in names else names[0]
        report.update(chosen=chosen_name, reason="the value has no calibration pairs to measure on")
        context.say(f"self-reward auto: {value.name!r} has no calibration pairs; using {chosen_name} unmeasured")
    else:
        bind_policy([variants[name] for name in names], policy)
        for name in names:
            label = f"self-reward auto: {name}"
            report["measured"][name] = measure_signal_once(variants[name], pairs, policy, label=label, say=context.say)
        chosen_name = max(names, key=lambda n: report["measured"][n]["accuracy"])  # first wins ties
        best = report["measured"][chosen_name]
        others = ", ".join(f"{n} {report['measured'][n]['accuracy']:.2f}" for n in names if n != chosen_name)
        report.update(chosen=chosen_name, reason="highest accuracy on the calibration pairs")
        context.say(f"self-reward auto: chose {describe_measure(chosen_name, best)}; others: {others or 'none'}")
        if not credibly_above_chance(best):
            report["warning"] = "no signal is credibly above chance (95% interval includes 0.5)"
            context.say(f"warning: self-reward auto: {report['warning']}; training may only amplify noise")
    chosen = variants[chosen_name]
    bind_policy([chosen], policy)
    if context.run_dir is not None:
        atomic_write_text(context.run_dir / CHOICE_FILE, json.dumps(report, indent=2) + "\n")
    return chosen, report
