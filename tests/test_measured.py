"""Measure once: measurements of an unchanged model are cached by content fingerprint."""

from __future__ import annotations

import pytest

from dynalign.api import RunContext, measure_signal_once
from dynalign.measured import folder_fingerprint, measure_once
from dynalign.values import CalibrationPair


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNALIGN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DYNALIGN_NO_CACHE")
    return tmp_path / "cache" / "measurements"


def test_a_measurement_is_made_once_per_key(cache, monkeypatch):
    calls: list[int] = []
    said: list[str] = []

    def compute() -> dict:
        calls.append(1)
        return {"accuracy": 0.75}

    assert measure_once("signal", {"model": "m1"}, compute, say=said.append) == {"accuracy": 0.75}
    assert measure_once("signal", {"model": "m1"}, compute, say=said.append, label="auto") == {"accuracy": 0.75}
    assert len(calls) == 1 and said == [
        "auto: reused the cached measurement (DYNALIGN_NO_CACHE=1 or --no-cache measures again)"
    ]
    measure_once("signal", {"model": "m2"}, compute)  # another model: measured
    measure_once("signal", None, compute)  # no identity: always measured
    monkeypatch.setenv("DYNALIGN_NO_CACHE", "1")
    measure_once("signal", {"model": "m1"}, compute)  # asked to measure afresh
    assert len(calls) == 4


def test_a_damaged_cache_entry_is_measured_again(cache):
    measure_once("signal", {"model": "m"}, lambda: 1)
    [entry] = cache.iterdir()
    entry.write_text("{not json")
    assert measure_once("signal", {"model": "m"}, lambda: 2) == 2
    assert measure_once("signal", {"model": "m"}, lambda: 3) == 2  # the fresh result replaced it


def test_a_changed_model_folder_has_another_fingerprint(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    before = folder_fingerprint(folder)
    assert folder_fingerprint(folder) == before
    (folder / "model.safetensors").write_bytes(b"other weights")
    assert folder_fingerprint(folder) != before


def test_auto_reuses_its_signal_measurements_until_pairs_or_model_change(
    cache, tiny_model_dir, ca_value, dynalign_registry
):
    from dynalign_hf.backend import HFChatModel, HFOptions
    from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

    handle = HFChatModel(HFOptions(model=str(tiny_model_dir))).policy_handle()
    assert handle.fingerprint() is not None
    pairs = [
        CalibrationPair(prompt=f"Question {i}?", better=f"A careful answer {i}.", worse=f"No. {i}") for i in range(4)
    ]
    calls: list[int] = []
    real = handle.completion_logprobs
    handle.completion_logprobs = lambda *a, **k: calls.append(1) or real(*a, **k)

    def measure(value_pairs: list[CalibrationPair]) -> dict:
        rewarder = SelfRewarder(SelfRewardOptions(mode="contrast"), RunContext(ca_value, dynalign_registry))
        rewarder.bind_policy(handle)
        return measure_signal_once(rewarder, value_pairs, handle, label="contrast")

    first = measure(pairs)
    measured = len(calls)
    assert measured > 0
    assert measure(pairs) == first and len(calls) == measured  # reused: the model was not asked again
    measure([*pairs[:3], CalibrationPair(prompt="Question 3?", better="Changed.", worse="No. 3")])
    assert len(calls) > measured  # a changed pair is measured again
    changed = len(calls)
    (tiny_model_dir / "touched.txt").write_text("a changed model folder")
    try:
        other = HFChatModel(HFOptions(model=str(tiny_model_dir))).policy_handle()
        assert other.fingerprint() != handle.fingerprint()
    finally:
        (tiny_model_dir / "touched.txt").unlink()
    assert len(calls) == changed
