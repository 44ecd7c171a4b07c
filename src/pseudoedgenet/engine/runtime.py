"""Hardware and provenance helpers for the run drivers (no import-time side effects)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

from pseudoedgenet.hardware import choose_precision

#: The package's precisions (:data:`pseudoedgenet.config.PRECISIONS`, resolved) as
#: Lightning's ``Trainer(precision=...)`` strings.
LIGHTNING_PRECISION = {"fp32": "32", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """The Lightning precision string a run uses for ``train.precision``.

    The choice is :func:`pseudoedgenet.hardware.choose_precision`, the one rule of
    training and inference (``auto``: fp16 mixed on CUDA, bf16 on CPUs with native bf16,
    fp32 elsewhere), on the device ``accelerator`` selects; the result is translated for
    Lightning (:data:`LIGHTNING_PRECISION`: ``32``, ``bf16-mixed``, ``16-mixed``).

    Args:
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (a config's ``train.precision``).
        accelerator: Lightning's accelerator (``auto``, ``cpu``, ``gpu``, ``cuda``).

    Raises:
        ConfigError: a precision outside that vocabulary.
    """
    on_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return LIGHTNING_PRECISION[choose_precision(precision, "cuda" if on_cuda else "cpu")]


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
