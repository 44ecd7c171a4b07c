"""What the machine can run: the one precision rule of training and inference, memory use.

Below the engine and inference (it imports neither, nor Lightning), so that both take the
same decision: :func:`choose_precision` turns the user's ``auto|fp32|bf16|fp16``
(:data:`pseudoedgenet.config.PRECISIONS`) into the precision a device runs; the engine
translates it into Lightning's strings, inference into an autocast dtype
(:func:`autocast_dtype`). No import-time side effects.
"""

from __future__ import annotations

import platform
import resource
from pathlib import Path

import torch

from pseudoedgenet.config import PRECISIONS
from pseudoedgenet.errors import ConfigError

#: The precisions a device runs (``auto`` resolved).
RESOLVED_PRECISIONS = ("fp32", "bf16", "fp16")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX).

    Uses PyTorch's CPU feature checks (``torch.cpu._is_avx512_bf16_supported`` and
    ``_is_amx_tile_supported``); where those do not exist (other PyTorch builds), an
    ``AVX512``/``AMX`` capability as reported by ``torch.backends.cpu.get_cpu_capability``.
    """
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        cap = torch.backends.cpu.get_cpu_capability()
        return cap.startswith(("AVX512", "AMX"))


def choose_precision(precision: str, device: str | torch.device) -> str:
    """The precision ``device`` runs for the user's choice: ``fp32``, ``bf16`` or ``fp16``.

    ``auto``: ``fp16`` (mixed) on CUDA, ``bf16`` on CPUs with native bf16
    (:func:`native_bf16_cpu`), ``fp32`` everywhere else. Any other value is returned as
    it is (the user asked for it).

    Args:
        precision: one of :data:`pseudoedgenet.config.PRECISIONS`
            (``auto``, ``fp32``, ``bf16``, ``fp16``).
        device: where the network runs (``cpu``, ``cuda``, ``cuda:1``, a ``torch.device``).

    Raises:
        ConfigError: a precision outside that vocabulary.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "fp16"
    if kind == "cpu" and native_bf16_cpu():
        return "bf16"
    return "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """``bf16`` -> ``torch.bfloat16``, ``fp16`` -> ``torch.float16``, ``fp32`` -> ``None``.

    Raises:
        ConfigError: anything but a resolved precision (:data:`RESOLVED_PRECISIONS`).
    """
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ConfigError(
            f"precision must be one of {', '.join(RESOLVED_PRECISIONS)}, got {precision!r}"
        )
    return dtypes[precision]


def precision_name(dtype: torch.dtype | None) -> str:
    """The inverse of :func:`autocast_dtype`: ``None`` -> ``fp32``, ``torch.bfloat16`` ->
    ``bf16``, ``torch.float16`` -> ``fp16``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


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
