"""`dynalign report`: the page opens in headless Chromium without console errors or broken images."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dynalign_eval.report import write_report
from dynalign_eval.testing import make_run_dir

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium is not installed (apt-get install -y chromium)"
)


def _fake_eval(run) -> None:
    pairs = [
        {
            "id": f"p{i}",
            "pillar": p,
            "prompt": f"prompt <{i}>",
            "base": "base answer",
            "aligned": "aligned answer",
            "preference": s,
        }
        for i, (p, s) in enumerate([("Knowledge", 1.0), ("Power", 0.5), ("Knowledge", 1.0), ("Vitality", 0.0)])
    ]
    ifeval = {
        "n_prompts": 5,
        "tokenizers": "regex",
        "prompt_level_strict_acc": 0.4,
        "inst_level_strict_acc": 0.5,
        "prompt_level_loose_acc": 0.6,
        "inst_level_loose_acc": 0.7,
    }
    check = {
        "n_pairs": 12,
        "mode": "probs",
        "pointwise_accuracy": 0.58,
        "pairwise_accuracy": 0.5,
        "pairwise_consistent_accuracy": 0.1,
        "position_bias_rate": 0.8,
    }
    run.write_json(
        "eval/results.json",
        {
            "status": "partial",
            "errors": {"tasks.aime25.base": "lm-eval task aime25 could not run"},
            "self_judged": True,
            "models": {"base": {"backend": "hf", "model": "base"}, "judge": {"backend": "hf"}},
            "win_rate": {
                "n": 4,
                "win_rate": 0.625,
                "ci95": [0.25, 1.0],
                "wins": 2,
                "ties": 1,
                "losses": 1,
                "lc_win_rate": 0.6,
                "lc_ci95": [0.2, 0.9],
                "judge_mode": "probs",
                "mean_length": {"base": 11.0, "aligned": 14.0},
                "per_pillar": {
                    "Knowledge": {"n": 2, "win_rate": 1.0, "ci95": [1.0, 1.0]},
                    "Power": {"n": 1, "win_rate": 0.5, "ci95": [0.5, 0.5]},
                },
                "pairs": pairs,
            },
            "ifeval": {"source": "x.jsonl", "base": ifeval, "aligned": {**ifeval, "prompt_level_strict_acc": 0.45}},
            "judge_check": check,
            "tasks": {"aime25": {"base": {"error": "offline"}}},
        },
    )
    run.write_json("judge_check.json", check)
    run.write_json("prompt_stats.json", {"rouge_l_max": [0.1, 0.3, 0.2, 0.5], "accepted": 10, "rejected": 2})


def _chromium(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *flags,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def check_in_browser(page: Path, tmp_path: Path) -> tuple[int, int, list[str]]:
    """(images, broken images, console messages) of `page` in headless Chromium; also screenshots it."""
    shot = tmp_path / "screenshot.png"
    taken = _chromium(
        page, tmp_path / "profile", "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}"
    )
    assert shot.exists() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    dumped = _chromium(page, tmp_path / "profile", "--dump-dom")
    body = re.search(r"<body[^>]*>", dumped.stdout)
    assert body, dumped.stderr[-2000:]
    images = re.search(r'data-images="(\d+)"', body.group(0))
    broken = re.search(r'data-broken-images="(\d+)"', body.group(0))
    console = [line for line in (dumped.stderr + taken.stderr).splitlines() if ":CONSOLE" in line]
    return int(images.group(1)) if images else -1, int(broken.group(1)) if broken else -1, console


def test_report_files_and_content(tmp_path, run_cli, tiny_model_dir):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir)
    _fake_eval(run)
    result = run_cli("report", run.root)
    assert result.exit_code == 0, result.stderr
    page = Path(result.stdout.strip())
    assert page == run.path("report/index.html")
    text = page.read_text()
    for expected in (
        "62.5%",
        "length-controlled 60.0%",
        "Self-judged",
        "Partial results",
        "aime25",
        "prompt &lt;3&gt;",
        "rouge_l_max",
        "position-bias rate",
        "before training",
    ):
        assert expected in text, expected
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert {"reward.png", "kl.png", "win_rate.png", "ifeval.png", "prompt_lengths.png"} <= set(pngs)
    assert text.count("data:image/png;base64,") == len(pngs)  # self-contained: every PNG is inlined


def test_report_of_an_unevaluated_run_still_renders(tmp_path, tiny_model_dir):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, None, steps=0)
    text = write_report(run).read_text()
    assert "No training metrics" in text and "Not evaluated" in text


@needs_chromium
def test_report_opens_in_headless_chromium(tmp_path, tiny_model_dir):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir)
    _fake_eval(run)
    page = write_report(run)
    images, broken, console = check_in_browser(page, tmp_path)
    assert images == len(list(page.parent.glob("*.png"))) and images >= 8
    assert broken == 0
    assert console == []


@needs_chromium
def test_the_browser_check_catches_broken_images_and_console_errors(tmp_path):
    run = make_run_dir(tmp_path / "run", "unused", None, steps=3)
    page = write_report(run)
    text = page.read_text().replace("data:image/png;base64,", "missing.png#", 1)
    page.write_text(text.replace("<script>", "<script>console.error('boom');", 1))
    images, broken, console = check_in_browser(page, tmp_path)
    assert broken == 1 and images >= 1
    assert any("boom" in line for line in console)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
