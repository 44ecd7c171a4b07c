"""A trained f: the one home of the segmentation network as a trained artifact.

Below both the Lightning engine and inference (it imports neither, nor Lightning), this
module owns everything about "a trained f":

* building the networks from a config (:func:`build_network`: f, g, h;
  :func:`build_segmenter`: f alone);
* f's input handling (:class:`Segmenter`: ImageNet normalisation of 0..255 RGB,
  :class:`Normalize`, and reflect padding to a multiple of 32 with the output cropped
  back, :func:`run_padded`, the one pad-and-run helper of validation, testing, figures
  and prediction);
* reading a training checkpoint (``best.ckpt``/``last.ckpt``) or an exported f file with
  ``torch.load(weights_only=True)`` (:func:`read_weights`, :func:`load_segmenter`),
  through explicit, versioned migrations (:data:`FORMAT_VERSION`, :data:`MIGRATIONS`);
* starting a new run from trained weights (:func:`init_weights`) and exporting f
  (:func:`export_segmenter`).

Format versions (``format_version``; a file without one is version 1):

1. Exported f file ``{"format": "pseudoedgenet-f", "version": <package version>,
   "config", "state_dict"}``; training checkpoints unstamped. A config written before
   ``model.edge_init``/``edge_scale``/``attention_scale`` existed lacks them; its run used
   :data:`PRE_SCALE_MODEL`. (Its ``train.precision`` may use Lightning's names ``32``,
   ``bf16-mixed``, ``16-mixed``; :mod:`pseudoedgenet.config` reads those for every
   config, stored or not.)
2. The same, with ``format_version: 2`` (exported file: top-level key; training
   checkpoint: :data:`CHECKPOINT_VERSION_KEY`, written by the LightningModule) and a
   complete config.

Both kinds may carry the pixel size of the training images, :data:`TRAINING_MPP_KEY`
(µm/px; absent or ``None`` when unknown), which ``predict`` checks slides against; it is
optional, so it needs no version of its own.

The exported file's ``state_dict`` is :class:`Segmenter`'s: ``0.mean``/``0.std``
(normalisation constants) and ``1.<f's keys>``. A training checkpoint's ``state_dict``
holds ``net.f.*``, ``net.g.*``, ``net.h.*`` (the LightningModule's attribute ``net``;
``net._orig_mod.*`` when the run used ``torch.compile``); f, g and h are loaded from it
into the plain networks built from its stored config, without Lightning.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import torch
from torch import nn

from pseudoedgenet import __version__
from pseudoedgenet.config import Config, ModelConfig, config_from_dict
from pseudoedgenet.data.io import atomic_path, file_sha256
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.models.networks import PseudoEdgeNet, build_model, zero_output_conv

#: ImageNet statistics, used for input normalisation with and without pretrained weights.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

#: f's input sides must be multiples of this (the FPN's stride-32 features).
MULTIPLE = 32

#: ``format`` of an exported f file.
EXPORT_FORMAT = "pseudoedgenet-f"
#: The format version this package writes (and the newest it reads).
FORMAT_VERSION = 2
#: Where a training checkpoint keeps its format version.
CHECKPOINT_VERSION_KEY = "pseudoedgenet_format_version"
#: Where a training checkpoint keeps the pixel size (µm/px) of its training images, and
#: the key of an exported f file that carries it on (absent or ``None``: unknown).
TRAINING_MPP_KEY = "pseudoedgenet_training_mpp"

#: What runs configured before ``model.edge_init/edge_scale/attention_scale`` existed
#: were trained with (the defaults have changed since).
PRE_SCALE_MODEL = {"edge_init": "default", "edge_scale": 1.0, "attention_scale": 1.0}

NETWORKS = ("f", "g", "h")


# --------------------------------------------------------------------------------------
# f's input: normalisation, padding
# --------------------------------------------------------------------------------------


class Normalize(nn.Module):
    """uint8/float RGB in 0..255 ``(N, 3, H, W)`` -> ImageNet-normalised float32."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Pads the bottom and right of ``x`` to multiples of ``multiple`` by reflection.

    Reflection as ``numpy.pad(mode="reflect")`` does it: the border pixel is not repeated
    (rows ``h-2, h-3, ...`` follow row ``h-1``), and a pad longer than the image reflects
    again (``[0, 1, 2]`` padded by 7 reads ``[0, 1, 2, 1, 0, 1, 2, 1, 0, 1]``). A side
    that is already a multiple is left alone; ``x`` itself is returned when both are.

    Shape:
        ``(..., H, W)`` any dtype -> ``(..., H', W')`` with ``H' = ceil(H / multiple) *
        multiple`` (likewise ``W'``); ``[..., :H, :W]`` of the result is ``x``. A
        channels-last input stays channels-last.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    fmt = _memory_format(x)
    for dim, n, pad in ((x.dim() - 2, h, ph), (x.dim() - 1, w, pw)):
        if pad:
            index = torch.from_numpy(np.pad(np.arange(n), (0, pad), mode="reflect"))
            x = x.index_select(dim, index.to(x.device))
    return x.contiguous(memory_format=fmt)


_Out = TypeVar("_Out", torch.Tensor, dict[str, torch.Tensor])


def run_padded(
    fn: Callable[[torch.Tensor], _Out], x: torch.Tensor, multiple: int = MULTIPLE
) -> _Out:
    """Runs ``fn`` on ``x`` reflect-padded to multiples of 32 and crops its output back.

    The one pad-and-run helper: validation and testing (the LightningModule), figures,
    whole-image prediction and :class:`Segmenter` all use it, so a network sees the same
    pixels everywhere. Padding is :func:`pad_to_multiple` (bottom and right, reflection
    without repeating the border pixel, as ``numpy.pad(mode="reflect")``), not zeros.

    Args:
        fn: ``(N, C, H', W') -> (N, K, H', W')`` (e.g. f with its normalisation), or a
            dict of such tensors (e.g. f, g and h's maps).
        x: ``(N, C, H, W)`` input, any H, W.
        multiple: the side multiple ``fn`` needs.

    Returns:
        ``fn``'s output with every tensor cropped to ``[..., :H, :W]``.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    out = fn(pad_to_multiple(x, multiple))
    if isinstance(out, dict):
        return cast(_Out, {k: v[..., :h, :w] for k, v in out.items()})
    return out[..., :h, :w]


class Segmenter(nn.Sequential):
    """f with its input normalisation: ``(N, 3, H, W)`` RGB 0..255 -> ``(N, 1, H, W)`` logits.

    ``[0]`` is :class:`Normalize`, ``[1]`` f. Inputs whose sides are multiples of 32 run as
    they are (so a traced or exported graph is normalisation + f); others are
    reflect-padded and the logits cropped back (:func:`run_padded`). The only network
    needed at inference.

    Shape:
        - input: ``(N, 3, H, W)`` uint8 or float RGB in 0..255, any H, W.
        - output: ``(N, 1, H, W)`` float foreground logits (sigmoid for probabilities).
    """

    def __init__(self, f: nn.Module) -> None:
        super().__init__(Normalize(), f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % MULTIPLE or x.shape[-1] % MULTIPLE:
            return run_padded(super().forward, x)
        return super().forward(x)


# --------------------------------------------------------------------------------------
# networks from a config
# --------------------------------------------------------------------------------------


def build_network(cfg: Config) -> PseudoEdgeNet:
    """Builds f, g, h from the model config (``cfg.model``), weights per ``pretrained``."""
    m = cfg.model
    f = build_model("segnet_fpn", encoder=m.encoder, pretrained=m.pretrained)
    g: nn.Module | None = None
    if m.edge == "small":
        g = build_model("edge_small", layers=m.edge_layers, width=m.edge_width)
    elif m.edge == "fpn":
        g = build_model("edge_fpn", encoder=m.edge_encoder, pretrained=m.pretrained)
    if g is not None and m.edge_init == "zero":
        zero_output_conv(g)
    h = (
        build_model("attention_fpn", encoder=m.attention_encoder, pretrained=m.pretrained)
        if m.attention
        else None
    )
    return PseudoEdgeNet(f, g, h, m.edge_scale, m.attention_scale)


def build_segmenter(cfg: Config) -> Segmenter:
    """f of ``cfg.model`` with its normalisation, randomly initialised (no download):
    the shell trained weights are loaded into."""
    return Segmenter(build_model("segnet_fpn", encoder=cfg.model.encoder, pretrained="none"))


# --------------------------------------------------------------------------------------
# reading: formats, versions, migrations
# --------------------------------------------------------------------------------------


def _v1_config(config: Any) -> Any:
    """Version 1 -> 2 of a stored config: fills the model keys a config from before
    ``model.edge_init/edge_scale/attention_scale`` lacks with :data:`PRE_SCALE_MODEL`.

    Returns ``config`` itself when it has them (or is not a mapping: reading it fails
    later, with the file named).
    """
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or "edge_scale" in model:
        return config
    return {**config, "model": {**PRE_SCALE_MODEL, **model}}


def _v1_to_v2(stored: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2 of ``{"config", "state_dict"}``: the config migration
    :func:`_v1_config`; state dicts are unchanged."""
    return {**stored, "config": _v1_config(stored["config"])}


#: ``{version: migration to version + 1}`` of ``{"config", "state_dict"}`` as stored in
#: either kind of file; applied in order up to :data:`FORMAT_VERSION`.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def migrate(stored: dict[str, Any], version: int) -> dict[str, Any]:
    """Brings ``{"config", "state_dict"}`` of a file of ``version`` to :data:`FORMAT_VERSION`.

    Raises:
        ValueError: a version below 1 or above :data:`FORMAT_VERSION`.
    """
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"format_version {version} is not in 1..{FORMAT_VERSION}")
    for v in range(version, FORMAT_VERSION):
        stored = MIGRATIONS[v](stored)
    return stored


@dataclass(frozen=True)
class TrainedWeights:
    """What a training checkpoint or an exported f file holds, migrated to this version.

    Attributes:
        path: the file.
        kind: ``checkpoint`` (Lightning's ``best.ckpt``/``last.ckpt``: f, g, h) or
            ``export`` (an exported f file: f only).
        format_version: the version written in the file (1 when it has none).
        config: the run's configuration.
        networks: ``{"f": state dict, "g": ..., "h": ...}`` with the networks' own keys
            (no ``net.``/``1.`` prefix); ``f`` always, ``g``/``h`` when the file has them.
        training_mpp: microns per pixel of the training images (:data:`TRAINING_MPP_KEY`),
            or ``None`` when the file does not record it (their images had no pixel size,
            or the file predates it).
    """

    path: Path
    kind: Literal["checkpoint", "export"]
    format_version: int
    config: Config
    networks: dict[str, dict[str, torch.Tensor]]
    training_mpp: float | None = None


def _is_other_runtime_export(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive or an ONNX file (``export --format``)."""
    if path.suffix.lower() == ".onnx":
        return True
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.endswith("/constants.pkl") for n in zf.namelist())


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors naming the file."""
    if _is_other_runtime_export(path):
        raise DataError(
            path,
            "is a TorchScript/ONNX export, for other runtimes: pass the run's best.ckpt or an "
            "f file from `pseudoedgenet export` (the default --format checkpoint)",
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "checkpoint not found") from None
    except IsADirectoryError:
        hint = f": pass {path / 'best.ckpt'}" if (path / "best.ckpt").is_file() else ""
        raise DataError(path, f"is a folder, not a checkpoint file{hint}") from None
    except Exception as exc:
        raise DataError(
            path,
            f"not a readable checkpoint ({type(exc).__name__}): pass a run's best.ckpt or an "
            "f file from `pseudoedgenet export`",
        ) from None


def read_weights(path: str | Path, map_location: str | torch.device = "cpu") -> TrainedWeights:
    """Reads a training checkpoint or an exported f file, migrated to :data:`FORMAT_VERSION`.

    Uses ``torch.load(..., weights_only=True)``: nothing in the file is unpickled as code.
    The file carries its config, so nothing else is needed.

    Args:
        path: ``best.ckpt``/``last.ckpt`` of a run or an exported f file
            (:func:`export_segmenter`).
        map_location: where tensors are loaded (``torch.load``'s ``map_location``).

    Raises:
        DataError: naming the file: missing, unreadable, neither kind, written by a newer
            pseudoedgenet, an invalid config, or no weights of f.
    """
    path = Path(path)
    payload = _torch_load(path, map_location)
    kind: Literal["checkpoint", "export"]
    if isinstance(payload, dict) and payload.get("format") == EXPORT_FORMAT:
        kind, version = "export", payload.get("format_version", 1)
        stored = {"config": payload.get("config"), "state_dict": payload.get("state_dict")}
    elif (
        isinstance(payload, dict)
        and isinstance(payload.get("state_dict"), dict)
        and isinstance(payload.get("hyper_parameters"), dict)
        and "config" in payload["hyper_parameters"]
    ):
        kind, version = "checkpoint", payload.get(CHECKPOINT_VERSION_KEY, 1)
        stored = {
            "config": payload["hyper_parameters"]["config"],
            "state_dict": payload["state_dict"],
        }
    else:
        raise DataError(
            path,
            "not a training checkpoint (best.ckpt/last.ckpt) nor an exported f file "
            "(pseudoedgenet export)",
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(path, f"invalid format_version {version!r} (expected an integer >= 1)")
    if version > FORMAT_VERSION:
        raise DataError(
            path,
            f"written by a newer pseudoedgenet (format_version {version}; this version "
            f"{__version__} reads up to {FORMAT_VERSION}): upgrade pseudoedgenet",
        )
    if not isinstance(stored["state_dict"], dict):
        raise DataError(path, "holds no state_dict")
    stored = migrate(stored, version)
    try:
        config = config_from_dict(stored["config"])
    except (ConfigError, TypeError) as exc:
        raise DataError(path, f"holds an invalid config ({exc})") from None
    sd: dict[str, torch.Tensor] = stored["state_dict"]
    if kind == "export":
        # Segmenter's state dict: 0 = Normalize (constants), 1 = f
        networks = {"f": {k[2:]: v for k, v in sd.items() if k.startswith("1.")}}
    else:
        # a torch.compile'd run saves its keys under ``net._orig_mod.``
        sd = {k.replace("_orig_mod.", ""): v for k, v in sd.items()}
        networks = {
            p: {k[len(f"net.{p}.") :]: v for k, v in sd.items() if k.startswith(f"net.{p}.")}
            for p in NETWORKS
        }
        networks = {p: part for p, part in networks.items() if part}
    if not networks.get("f"):
        raise DataError(path, "holds no weights of f")
    mpp = payload.get(TRAINING_MPP_KEY)
    if mpp is not None and (
        not isinstance(mpp, int | float) or isinstance(mpp, bool) or not 0 < mpp < float("inf")
    ):
        raise DataError(path, f"invalid {TRAINING_MPP_KEY} {mpp!r} (expected µm/px > 0)")
    training_mpp = None if mpp is None else float(mpp)
    return TrainedWeights(path, kind, version, config, networks, training_mpp)


def _load_into(target: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """``target.load_state_dict(state)`` (strict), a mismatch as a one-line DataError."""
    problem = first_mismatch(target.state_dict(), state)
    if problem is not None:
        raise DataError(path, f"{name} does not match the network of its own config: {problem}")
    target.load_state_dict(state)


def load_networks(net: PseudoEdgeNet, weights: TrainedWeights) -> PseudoEdgeNet:
    """Loads every network ``net`` has (f, and g, h when present) from ``weights``, strictly.

    Raises:
        DataError: the file lacks one of them or one does not fit.
    """
    for name in NETWORKS:
        target = getattr(net, name)
        if target is None:
            continue
        if name not in weights.networks:
            raise DataError(weights.path, f"holds no weights of {name}")
        _load_into(target, weights.networks[name], weights.path, name)
    return net


def load_segmenter(path: str | Path, map_location: str | torch.device = "cpu") -> Segmenter:
    """Loads f (with input normalisation) from an exported file or a training checkpoint.

    No Lightning is imported: f is built from the stored config (:func:`build_segmenter`)
    and its weights loaded (:func:`read_weights`, ``torch.load(weights_only=True)``).

    Returns:
        :class:`Segmenter` in eval mode on the CPU: ``(N, 3, H, W)`` RGB 0..255 -> logits.

    Raises:
        DataError: see :func:`read_weights`; f's weights do not fit its config.
    """
    return segmenter_from(read_weights(path, map_location))


def segmenter_from(weights: TrainedWeights) -> Segmenter:
    """f (with input normalisation) of weights already read (:func:`read_weights`).

    Returns:
        :class:`Segmenter` in eval mode: ``(N, 3, H, W)`` RGB 0..255 -> logits.

    Raises:
        DataError: f's weights do not fit its config.
    """
    seg = build_segmenter(weights.config)
    _load_into(seg[1], weights.networks["f"], weights.path, "f")
    return seg.eval()


# --------------------------------------------------------------------------------------
# writing, and starting a new run from trained weights
# --------------------------------------------------------------------------------------


def export_segmenter(checkpoint: str | Path, out: str | Path) -> Path:
    """Saves f alone (state dict + its run's config) for inference, atomically.

    The file is ``{"format": "pseudoedgenet-f", "format_version": FORMAT_VERSION,
    "version": <package version>, "config", "state_dict", TRAINING_MPP_KEY}`` (``state_dict``:
    :class:`Segmenter`'s), readable with ``torch.load(..., weights_only=True)``; see
    :func:`load_segmenter`.

    Args:
        checkpoint: a training checkpoint (``best.ckpt``/``last.ckpt``).
        out: the file to write.

    Returns:
        ``out`` as a Path.

    Raises:
        DataError: an unreadable checkpoint, or an exported f file (export reads the
            training checkpoint).
    """
    weights = read_weights(checkpoint)
    if weights.kind == "export":
        raise DataError(
            checkpoint,
            "is already an exported f file: use it as it is (export reads a training "
            "checkpoint, best.ckpt/last.ckpt)",
        )
    seg = build_segmenter(weights.config)
    _load_into(seg[1], weights.networks["f"], weights.path, "f")
    payload = {
        "format": EXPORT_FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "config": weights.config.to_dict(),
        "state_dict": seg.state_dict(),
        TRAINING_MPP_KEY: weights.training_mpp,
    }
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    return out


def first_mismatch(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> str | None:
    """The first key whose presence or shape differs between two state dicts, described
    (``"encoder.x is missing from the file"``, ``"... has shape (a, b) in the file, (c, d)
    in this config"``), or ``None`` when they fit."""
    for key, value in target.items():
        if key not in source:
            return f"{key} is missing from the file"
        if tuple(source[key].shape) != tuple(value.shape):
            return (
                f"{key} has shape {tuple(source[key].shape)} in the file, "
                f"{tuple(value.shape)} in this config"
            )
    extra = next((k for k in source if k not in target), None)
    return None if extra is None else f"{extra} is in the file but not in this config's network"


def init_weights(net: PseudoEdgeNet, path: str | Path, model: ModelConfig) -> dict[str, Any]:
    """Starts f (and g, h where they match) of a new run from trained weights.

    ``path`` is a training checkpoint (f, g, h) or an exported f file
    (:func:`export_segmenter`). f must have exactly this config's architecture. g and h
    are loaded when the file has them and they have this config's architecture;
    otherwise they start from scratch (the returned record says which and why). Only
    weights are loaded: the optimiser and the epoch counters start fresh.

    Args:
        net: the new run's networks, freshly built (not compiled).
        path: the file, read with :func:`read_weights`.
        model: the new run's model config (named in the error of a mismatching f).

    Returns:
        ``{"path", "sha256", "loaded": ["f", ...], "scratch": {"g": "why", ...}}``;
        ``scratch`` lists only networks this config has.

    Raises:
        DataError: naming the file: unreadable, not one of the two formats, or an f of
            another architecture (with the first mismatching key).
    """
    weights = read_weights(path)
    record: dict[str, Any] = {
        "path": str(path),
        "sha256": file_sha256(path),
        "loaded": [],
        "scratch": {},
    }
    for name in NETWORKS:
        target = getattr(net, name)
        if target is None:
            continue
        source = weights.networks.get(name)
        if not source:
            record["scratch"][name] = f"the file has no {name}"
            continue
        problem = first_mismatch(target.state_dict(), source)
        if problem is not None:
            if name == "f":
                hint = (
                    f" (its f: model.encoder={weights.config.model.encoder}; "
                    f"this config: {model.encoder})"
                )
                raise DataError(path, f"f does not match this config's f: {problem}{hint}")
            record["scratch"][name] = f"the file's {name} differs ({problem})"
            continue
        target.load_state_dict(source)
        record["loaded"].append(name)
    return record


def describe_init(init: dict[str, Any]) -> str:
    """``"f, g, h from X"`` / ``"f from X; g, h from scratch (...)"`` for the start line
    (``init``: a record of :func:`init_weights`)."""
    text = f"{', '.join(init['loaded'])} from {init['path']}"
    scratch = init.get("scratch", {})
    if scratch:
        why = "; ".join(scratch.values())
        text += f"; {', '.join(scratch)} from scratch ({why})"
    return text


__all__ = [
    "CHECKPOINT_VERSION_KEY",
    "EXPORT_FORMAT",
    "FORMAT_VERSION",
    "MIGRATIONS",
    "Normalize",
    "Segmenter",
    "TrainedWeights",
    "build_network",
    "build_segmenter",
    "describe_init",
    "export_segmenter",
    "first_mismatch",
    "init_weights",
    "load_networks",
    "load_segmenter",
    "migrate",
    "pad_to_multiple",
    "read_weights",
    "run_padded",
]
