"""The public API of dynalign for plugins: everything a plugin (built-in or third-party), a value
package or an example imports from the core, in one place.

    from dynalign import hookimpl
    from dynalign.api import Options, Rewarder

Nothing else in `dynalign.*` is a plugin's to import (the architecture test enforces it for the
built-in plugins, values/ and examples/); what is not here is the core's own machinery (config
files and their overrides, the registry, plugin discovery, the round loop, the CLI) and may
change. The names, by what they are for:

- registering: `hookimpl` (the hooks are documented in `dynalign.hookspecs`);
- errors: the `DynalignError` family (the CLI prints one line, `--traceback` the chain);
- messages: `Conversation`, `as_conversation`, `with_system`;
- the plugin kinds: `Options`, `Component`, `RunContext`, `ChatModel`, `ModelRef`,
  `GenerationParams`, `TrainablePolicy`, `PolicyHandle`, `PromptGenerator`, `PromptRecord`,
  `PromptSet`, `Rewarder` (and its metric keys, `checked_scores`, `logged_metrics`),
  `Optimizer`, `TrainRequest`, `TrainResult`, `Stage`, `Stack`;
- values: `ValueSpec`, `CalibrationPair`, `load_value_file`;
- opening a run (for commands): `open_stack`, `bind_policy`, `preflight`;
- files and run directories: `RunDirectory`, atomic writes, strict JSON-lines reading,
  timings, the measurement cache (`measure_once`) and `redact`;
- judging (`dynalign.judging`): judge prompts, verdict parsing, inert text, asking a judge,
  calibration on labeled pairs, the call cache and the failure budget.

`dynalign.testing` (a pytest plugin: fixtures and contract checks) is the public API for a
plugin's tests.
"""

from dynalign.components import Component, ModelRef, Options, RunContext, validate_options
from dynalign.errors import (
    ConfigError,
    DynalignError,
    JudgeError,
    ModelError,
    RewarderError,
    RunDirectoryError,
    UnsupportedError,
    ValueSpecError,
)
from dynalign.extras import MissingExtraError, require
from dynalign.files import (
    atomic_write_text,
    check_writable,
    end_line,
    ensure_folder,
    numbered_jsonl,
    read_json,
    read_jsonl_strict,
    read_text,
    require_file,
)
from dynalign.hookspecs import hookimpl
from dynalign.judging.asking import pairwise, pointwise, refusals, resolve_mode
from dynalign.judging.budget import FailureBudget
from dynalign.judging.cache import CallCache, call_key
from dynalign.judging.calibration import (
    accuracy_summary,
    credibly_above_chance,
    describe_measure,
    measure_signal,
    measure_signal_once,
    pair_outcome,
    wilson_interval,
)
from dynalign.judging.inert import make_inert, strip_control_tokens
from dynalign.judging.prompts import (
    clean,
    completion_text,
    fence,
    group_indices,
    groupwise_messages,
    pairwise_messages,
    pillar_messages,
    pointwise_messages,
    prompt_text,
    refusal_messages,
    rubric_system,
)
from dynalign.judging.verdicts import (
    REFUSAL_PREFIX,
    SCORE_PREFIX,
    WINNER_PREFIX,
    Verdict,
    combine_orders,
    expected_score,
    mean_or_none,
    order_score,
    parse_group_scores,
    parse_preference,
    parse_refusal,
    parse_score,
    preference_value,
    score_choices,
)
from dynalign.measured import cache_root, digest, folder_fingerprint, measure_once
from dynalign.messages import Conversation, Message, as_conversation, with_system
from dynalign.models import DEFAULT_POLICY, ChatModel, GenerationParams, PolicyHandle, TrainablePolicy
from dynalign.opening import bind_policy, open_stack, preflight
from dynalign.promptsets import PromptGenerator, PromptRecord, PromptSet
from dynalign.redaction import redact, redact_urls
from dynalign.rewards import (
    INVALID_RATE,
    LENGTH_CORR,
    MEAN,
    PILLAR_PREFIX,
    SCORE_MEAN,
    UNSCORABLE_RATE,
    Rewarder,
    WeightedRewarder,
    checked_scores,
    logged_metrics,
)
from dynalign.rundir import RECORDED_PACKAGES, RunDirectory, package_versions
from dynalign.stack import Stack, Stage
from dynalign.timing import recorder
from dynalign.training import Optimizer, TrainRequest, TrainResult
from dynalign.values import CalibrationPair, ValueSpec, load_value_file

__all__ = [
    # registering
    "hookimpl",
    # errors
    "ConfigError",
    "DynalignError",
    "JudgeError",
    "MissingExtraError",
    "ModelError",
    "RewarderError",
    "RunDirectoryError",
    "UnsupportedError",
    "ValueSpecError",
    "require",
    # messages
    "Conversation",
    "Message",
    "as_conversation",
    "with_system",
    # the plugin kinds
    "DEFAULT_POLICY",
    "ChatModel",
    "Component",
    "GenerationParams",
    "ModelRef",
    "Optimizer",
    "Options",
    "PolicyHandle",
    "PromptGenerator",
    "PromptRecord",
    "PromptSet",
    "Rewarder",
    "RunContext",
    "Stack",
    "Stage",
    "TrainRequest",
    "TrainResult",
    "TrainablePolicy",
    "WeightedRewarder",
    "validate_options",
    # the rewarder contract
    "INVALID_RATE",
    "LENGTH_CORR",
    "MEAN",
    "PILLAR_PREFIX",
    "SCORE_MEAN",
    "UNSCORABLE_RATE",
    "checked_scores",
    "logged_metrics",
    # values
    "CalibrationPair",
    "ValueSpec",
    "load_value_file",
    # opening a run
    "bind_policy",
    "open_stack",
    "preflight",
    # files, run directories, caches
    "RECORDED_PACKAGES",
    "RunDirectory",
    "atomic_write_text",
    "cache_root",
    "check_writable",
    "digest",
    "end_line",
    "ensure_folder",
    "folder_fingerprint",
    "measure_once",
    "numbered_jsonl",
    "package_versions",
    "read_json",
    "read_jsonl_strict",
    "read_text",
    "recorder",
    "redact",
    "redact_urls",
    "require_file",
    # judging
    "REFUSAL_PREFIX",
    "SCORE_PREFIX",
    "WINNER_PREFIX",
    "CallCache",
    "FailureBudget",
    "Verdict",
    "accuracy_summary",
    "call_key",
    "clean",
    "combine_orders",
    "completion_text",
    "credibly_above_chance",
    "describe_measure",
    "expected_score",
    "fence",
    "group_indices",
    "groupwise_messages",
    "make_inert",
    "mean_or_none",
    "measure_signal",
    "measure_signal_once",
    "order_score",
    "pair_outcome",
    "pairwise",
    "pairwise_messages",
    "parse_group_scores",
    "parse_preference",
    "parse_refusal",
    "parse_score",
    "pillar_messages",
    "pointwise",
    "pointwise_messages",
    "preference_value",
    "prompt_text",
    "refusal_messages",
    "refusals",
    "resolve_mode",
    "rubric_system",
    "score_choices",
    "strip_control_tokens",
    "wilson_interval",
]
