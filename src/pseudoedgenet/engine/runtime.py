"""Hardware and provenance helpers for the run drivers (no import-time side effects)."""

from __future__ import annotations

import platform
import resource
import subprocess
from pathlib import Path

import torch


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """Turns ``auto`` into a Lightning precision string for this machine.

    CUDA: ``bf16-mixed`` where supported, else ``16-mixed``. CPU: ``bf16-mixed`` when
    the CPU has native bf16 (AVX512-BF16/AMX, reported as AVX512 capability or better by
    PyTorch), else ``32``.
    """
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    cap = torch.backends.cpu.get_cpu_capability()
    return "bf16-mixed" if cap.startswith("AVX512") or cap.startswith("AMX") else "32"


def device_description(accelerator: str = "auto") -> str:
    """A human-readable name of the device that will run the model."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n}x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    return (
        f"cpu ({torch.get_num_threads()} threads, {cpu}, {torch.backends.cpu.get_cpu_capability()})"
    )


def git_commit(path: str | Path | None = None) -> str:
    """The current git commit of the source tree (``-dirty`` appended), or ``unknown``."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    ``VmHWM`` from ``/proc/self/status`` on Linux: unlike ``ru_maxrss``, it starts afresh
    at ``exec``, so a child started from a large parent (e.g. pytest) is not charged with
    the parent's pages. Elsewhere, ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if platform.system() == "Darwin" else rss / 1024
