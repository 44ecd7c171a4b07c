"""Exporting the segmentation network f alone: checkpoint, TorchScript or ONNX.

All three take the same input and give the same output as
:class:`pseudoedgenet.models.trained.Segmenter` on sides that are multiples of 32
(the exported graphs are normalisation + f, without the Segmenter's padding):

Shape:
    - input ``image``: ``(N, 3, H, W)`` float32 RGB in 0..255 (H, W multiples of 32; the
      ImageNet normalisation is inside the model).
    - output ``logits``: ``(N, 1, H, W)`` float32 foreground logits (apply a sigmoid for
      probabilities).

- ``checkpoint``: the package's own ``f`` file
  (:func:`pseudoedgenet.models.trained.export_segmenter`: state dict + config +
  ``format_version``, loaded with ``torch.load(weights_only=True)``); needs this package.
- ``torchscript``: ``torch.jit.trace`` on a ``1 x 3 x 256 x 256`` input; runs with torch
  alone (``torch.jit.load``), any batch size and any H, W multiple of 32.
- ``onnx``: ``torch.onnx.export`` (the ``torch.export``-based exporter) with dynamic batch,
  height and width; needs ``pip install pseudoedgenet[onnx]`` (onnx, onnxscript; onnxruntime
  to run it).

The TorchScript and ONNX files carry what a pipeline without this package needs to feed f
right (:func:`model_metadata`): the pixel size of the training images (µm/px, empty when
unknown; nothing is resampled, so read slides at that pixel size), the input and output
conventions and the package version; TorchScript as the extra file ``pseudoedgenet.json``
(``torch.jit.load(path, _extra_files={"pseudoedgenet.json": ""})``), ONNX as
``metadata_props`` (``onnx.load(path).metadata_props``; onnxruntime:
``session.get_modelmeta().custom_metadata_map``).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from pseudoedgenet import __version__
from pseudoedgenet.data.io import atomic_path
from pseudoedgenet.data.prepared import check_output_file
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.models.trained import (
    TrainedWeights,
    export_segmenter,
    read_weights,
    segmenter_from,
)

FORMATS = ("checkpoint", "torchscript", "onnx")
#: File endings that name a format: ``export --out f.onnx`` writes ONNX without
#: ``--format``; any other ending (``.pt``, ``.pth``) is the package's f file.
FORMAT_SUFFIXES = {".onnx": "onnx", ".ts": "torchscript", ".torchscript": "torchscript"}


def export_format(out: str | Path, format: str | None = None) -> str:
    """The format to write to ``out``: ``format`` when given, else the one its ending names
    (:data:`FORMAT_SUFFIXES`; ``checkpoint`` otherwise).

    Raises:
        ConfigError: an unknown ``format``, or one that contradicts ``out``'s ending
            (``--out f.onnx --format checkpoint``).
    """
    suffix = Path(out).suffix.lower()
    named = FORMAT_SUFFIXES.get(suffix)
    if format is None:
        return named or "checkpoint"
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}: expected one of {', '.join(FORMATS)}")
    if named is not None and named != format:
        raise ConfigError(
            f"--out {Path(out).name} ends in {suffix} ({named}) but --format is {format}: "
            f"drop --format, or name the file for {format}"
        )
    return format


def _traceable_f(weights: TrainedWeights) -> nn.Module:
    """Normalisation + f of a checkpoint as a plain ``nn.Sequential`` in eval mode (the
    :class:`~pseudoedgenet.models.trained.Segmenter` without its padding branch, which a
    traced graph could not keep)."""
    return nn.Sequential(*segmenter_from(weights)).eval()


def model_metadata(weights: TrainedWeights) -> dict[str, str]:
    """The string metadata written into TorchScript and ONNX files.

    Returns:
        ``{"training_mpp": "0.252" or "" (unknown), "input": ..., "output": ...,
        "method": ..., "pseudoedgenet_version": ...}``.
    """
    mpp = weights.training_mpp
    return {
        "training_mpp": "" if mpp is None else f"{mpp:.6g}",
        "input": "image: (N, 3, H, W) float32 RGB 0..255, H and W multiples of 32, read at "
        "training_mpp µm/px (not resampled)",
        "output": "logits: (N, 1, H, W) float32; nucleus where sigmoid(logits) > 0.5",
        "method": weights.config.method,
        "pseudoedgenet_version": __version__,
    }


def export_torchscript(checkpoint: str | Path, out: str | Path, size: int = 256) -> Path:
    """Traces f on a ``1 x 3 x size x size`` input and saves it with ``torch.jit.save``.

    Args:
        checkpoint: training checkpoint or exported f file.
        out: ``.pt`` file to write (atomically).
        size: side of the tracing input (multiple of 32).

    Returns:
        ``out``.
    """
    weights = read_weights(checkpoint)
    seg = _traceable_f(weights)
    out = Path(out)
    extra = {"pseudoedgenet.json": json.dumps(model_metadata(weights), sort_keys=True)}
    with atomic_path(out) as tmp, torch.no_grad(), warnings.catch_warnings():
        # the shape checks of the FPN become constants: harmless for H, W multiples of 32
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(seg, torch.zeros(1, 3, size, size), check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    return out


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 18, size: int = 256) -> Path:
    """Exports f to ONNX with dynamic batch, height and width.

    Uses the ``torch.export``-based exporter (``dynamo=True``); opset 18 is the lowest it
    implements natively.

    Args:
        checkpoint: training checkpoint or exported f file.
        out: ``.onnx`` file to write (atomically).
        opset: ONNX opset version.
        size: side of the example input (multiple of 32).

    Returns:
        ``out``.

    Raises:
        ConfigError: ``onnx``/``onnxscript`` are not installed.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"ONNX export needs {' and '.join(missing)}: pip install 'pseudoedgenet[onnx]'"
        )
    import onnx
    from torch.export import Dim

    weights = read_weights(checkpoint)
    seg = _traceable_f(weights)
    out = Path(out)
    h, w = Dim("h", min=1, max=4096), Dim("w", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            seg,
            (torch.zeros(1, 3, size, size),),
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=({0: Dim("batch", max=1024), 2: 32 * h, 3: 32 * w},),
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    with atomic_path(out) as tmp:
        program.save(str(tmp))
        model = onnx.load(str(tmp))
        onnx.helper.set_model_props(model, model_metadata(weights))
        onnx.save(model, str(tmp))
    return out


def export_model(
    checkpoint: str | Path, out: str | Path, format: str | None = None, force: bool = False
) -> Path:
    """Exports f in one of :data:`FORMATS`.

    Args:
        checkpoint: ``best.ckpt`` / ``last.ckpt`` of a run (``torchscript`` and ``onnx``
            also take an exported f file).
        out: file to write.
        format: ``checkpoint`` (the package's f file), ``torchscript`` or ``onnx``;
            ``None``: named by ``out``'s ending (:func:`export_format`).
        force: replace an existing ``out``.

    Returns:
        ``out``.

    Raises:
        ConfigError: unknown format, one ``out``'s ending contradicts, or missing ONNX
            packages.
        DataError: unreadable checkpoint; ``out`` a folder, not writable or existing
            without ``force`` (checked before the checkpoint is read); an ``OSError`` while
            writing (full disk: nothing is left behind).
    """
    format = export_format(out, format)
    out = check_output_file(out, "--out")
    if out.exists() and not force:
        raise DataError(out, "exists (use --force to replace it)")
    writers = {
        "checkpoint": export_segmenter,
        "torchscript": export_torchscript,
        "onnx": export_onnx,
    }
    try:
        return writers[format](checkpoint, out)
    except OSError as exc:
        raise DataError(out, f"cannot write: {exc.strerror or exc}; nothing was written") from None
