"""Run configuration: frozen dataclasses per concern, one base plus small overlays.

The base is the paper's method (:func:`default_config`). Everything else is an *overlay*: a
mapping with the sections ``method``, ``data``, ``model``, ``loss``, ``train`` that names
only the keys it changes (unknown sections or keys are errors). :func:`resolve_config`
combines the layers in one fixed order, each replacing the keys it names:

1. the base, the paper's method ``pen_att`` (:func:`default_config`);
2. the method: a packaged overlay by name (``configs/methods/<name>.yaml`` inside this
   package, one per row of the paper's Tables 1 and 2, :func:`method_names`) or a user's
   YAML file (:func:`load_config`);
3. the protocol: a packaged overlay by name (``configs/protocols/<name>.yaml``: ``paper``,
   ``cpu``, ``cpu-long``, ``smoke``, ``demo``; :func:`protocol_names`);
4. the shortcut flags ``--epochs``, ``--max-steps``, ``--crop``;
5. the ``--set section.key=value`` overrides, in order (``value`` parsed as YAML with
   ``yaml.safe_load``: never executes anything).

No dataset has its own overlay: no dataset needs different values today. The resolved
config is written, complete (every field of every section), into every run folder as
``config.yaml``; loaded back it is the same config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from pseudoedgenet.errors import ConfigError

#: The precisions a user chooses from (``train.precision``, ``predict --precision``):
#: ``auto`` lets :func:`pseudoedgenet.hardware.choose_precision` decide.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: Migration: the Lightning names older configs used for ``train.precision``.
LEGACY_PRECISIONS = {"32": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}


#: Lightning's accelerator names this package accepts (``train.accelerator``).
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class DataConfig:
    """Training crops and augmentation.

    Attributes:
        crop: side of the square training crop (multiple of 32).
        crops_per_epoch: random crops drawn per epoch (an "epoch" is this many crops).
        batch_size: crops per optimiser step.
        num_workers: DataLoader worker processes (0 = in the main process).
        augment: apply the Section 4.2 augmentations.
        context: extra pixels read around a crop so geometric augmentation has real
            image content to rotate in and Voronoi cells see neighbours outside the crop.
    """

    crop: int = 256
    crops_per_epoch: int = 160
    batch_size: int = 8
    num_workers: int = 2
    augment: bool = True
    context: int = 64

    def __post_init__(self) -> None:
        _check(
            self.crop > 0 and self.crop % 32 == 0,
            f"data.crop must be a positive multiple of 32, got {self.crop}",
        )
        _check(self.batch_size >= 1, "data.batch_size must be >= 1")
        _check(
            self.crops_per_epoch >= self.batch_size, "data.crops_per_epoch must be >= batch_size"
        )
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")
        _check(self.context >= 0, "data.context must be >= 0")


@dataclass(frozen=True)
class ModelConfig:
    """Networks f, g, h.

    Attributes:
        encoder: encoder of f (FPN-ResNet50 in the paper).
        pretrained: ``none`` (from scratch, the default here) or ``imagenet`` (needs
            internet to download the weights).
        edge: ``none`` (no g: baseline, DenseCRF, fully supervised), ``small`` (conv
            stack) or ``fpn`` (large g).
        edge_layers: conv layers of the small g (2, 4, 6, 8 in Table 2).
        edge_width: filters per layer of the small g.
        edge_encoder: encoder of the large g (resnet18/34/50).
        attention: use the attention network h (needs g).
        attention_encoder: encoder of h (FPN-ResNet18 in the paper).
        edge_init: initial weights of g's output convolution: ``zero`` (g(I) ⊗ h(I)
            starts at exactly 0) or ``default`` (PyTorch's default init).
        edge_scale: γ_g, a constant multiplying g's output. The function class is the same
            (the weights absorb any constant), but under Adam every parameter step moves
            the output by about γ_g times as much, so g moves at the scale of its target
            s(f) (mean |s| ≈ 0.02) instead of overshooting it. 1.0 = no scaling.
        attention_scale: γ_h, h(I) = sigmoid(γ_h · logits): the same idea for h's logits.
            Without both scales h is driven to 0 everywhere within ~10 Adam steps and
            never recovers (see the README, "Attention collapse"). 1.0 = no scaling.
    """

    encoder: str = "resnet50"
    pretrained: str = "none"
    edge: str = "small"
    edge_layers: int = 4
    edge_width: int = 64
    edge_encoder: str = "resnet50"
    attention: bool = True
    attention_encoder: str = "resnet18"
    edge_init: str = "zero"
    edge_scale: float = 0.02
    attention_scale: float = 0.05

    def __post_init__(self) -> None:
        _check(self.pretrained in ("none", "imagenet"), "model.pretrained must be none or imagenet")
        _check(self.edge in ("none", "small", "fpn"), "model.edge must be none, small or fpn")
        _check(
            not (self.attention and self.edge == "none"), "model.attention needs an edge network"
        )
        _check(self.edge_layers >= 1, "model.edge_layers must be >= 1")
        _check(self.edge_width >= 1, "model.edge_width must be >= 1")
        _check(self.edge_init in ("zero", "default"), "model.edge_init must be zero or default")
        _check(self.edge_scale > 0, "model.edge_scale must be > 0")
        _check(self.attention_scale > 0, "model.attention_scale must be > 0")


@dataclass(frozen=True)
class LossConfig:
    """Loss terms.

    Attributes:
        supervision: ``points`` (Voronoi labels) or ``masks`` (full masks: the upper bound).
        pos_weight, neg_weight: label weights of L_ce (1.0 and 0.1 in the paper).
        normalization: ``per_class`` or ``pixel`` (see ``losses.functional.point_bce``).
        edge_weight: λ of Eq. (1)-(2) (1.0 in the paper).
        edge_warmup_epochs: epochs trained with L_ce alone before the edge term (and g, h)
            join. Not in the paper: without it f is still flat when g and h start, the only
            edges to match are zero and the attention h saturates at 0 for good.
        sobel_normalized: divide the Sobel kernels by 8.
        crf_weight: weight of the DenseCRF regularised loss (0 = off). The relaxed Potts
            term is lowest for a constant output, so a weight that lets it outweigh the
            point loss collapses f to all-foreground (0.5, and 0.05 without warm-up, did on
            TNBC); the DenseCRF configs use 0.02.
        crf_warmup_epochs: epochs trained with L_ce alone before the CRF term joins (as
            Tang et al. fine-tune a partial-CE model; from the first step the term drives
            the still-flat f to a constant).
        crf_sigma_rgb, crf_sigma_xy, crf_radius, crf_downsample: its kernel (local-window
            approximation, see ``losses.functional.local_crf_loss``).
    """

    supervision: str = "points"
    pos_weight: float = 1.0
    neg_weight: float = 0.1
    normalization: str = "per_class"
    edge_weight: float = 1.0
    edge_warmup_epochs: int = 0
    sobel_normalized: bool = True
    crf_weight: float = 0.0
    crf_warmup_epochs: int = 0
    crf_sigma_rgb: float = 15.0
    crf_sigma_xy: float = 5.0
    crf_radius: int = 5
    crf_downsample: int = 2

    def __post_init__(self) -> None:
        _check(self.supervision in ("points", "masks"), "loss.supervision must be points or masks")
        _check(
            self.normalization in ("per_class", "pixel"),
            "loss.normalization must be per_class or pixel",
        )
        _check(self.pos_weight >= 0 and self.neg_weight >= 0, "loss weights must be >= 0")
        _check(self.edge_weight >= 0 and self.crf_weight >= 0, "loss weights must be >= 0")
        _check(self.edge_warmup_epochs >= 0, "loss.edge_warmup_epochs must be >= 0")
        _check(self.crf_warmup_epochs >= 0, "loss.crf_warmup_epochs must be >= 0")
        _check(self.crf_sigma_rgb > 0 and self.crf_sigma_xy > 0, "loss.crf_sigma_* must be > 0")
        _check(self.crf_radius >= 1, "loss.crf_radius must be >= 1")
        _check(self.crf_downsample >= 1, "loss.crf_downsample must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and hardware.

    Attributes:
        epochs: training epochs (each ``data.crops_per_epoch`` crops).
        max_steps: stop after this many optimiser steps (-1 = no limit).
        lr: Adam learning rate (1e-3 in the paper).
        plateau_factor, plateau_patience: the LR is multiplied by ``plateau_factor`` when
            the mean training loss of an epoch has not decreased for ``plateau_patience``
            epochs (0.5 and 5 in the paper).
        precision: ``auto`` (bf16 autocast on CPUs with native bf16, fp16 mixed on
            CUDA, fp32 elsewhere: :func:`pseudoedgenet.hardware.choose_precision`),
            ``fp32``, ``bf16`` or ``fp16`` (:data:`PRECISIONS`). The names older configs
            used, ``32``, ``bf16-mixed`` and ``16-mixed``, are read as ``fp32``, ``bf16``
            and ``fp16`` (:data:`LEGACY_PRECISIONS`).
        channels_last: NHWC memory layout (faster convolutions on CPU).
        accelerator, devices, strategy: passed to Lightning (``auto`` picks CUDA when
            present; several GPUs use DDP).
        compile: wrap the networks in ``torch.compile``.
        seed: global seed (Python, numpy, torch, workers).
        threshold: probability threshold of f for validation/test (0.5).
        val_every: validate every this many epochs.
    """

    epochs: int = 100
    max_steps: int = -1
    lr: float = 1e-3
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    precision: str = "auto"
    channels_last: bool = True
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    compile: bool = False
    seed: int = 0
    threshold: float = 0.5
    val_every: int = 1

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        _check(
            self.max_steps == -1 or self.max_steps >= 1,
            f"train.max_steps must be >= 1 (or -1: no limit), got {self.max_steps}",
        )
        _check(self.lr > 0, "train.lr must be > 0")
        _check(0 < self.plateau_factor < 1, "train.plateau_factor must be in (0, 1)")
        _check(self.plateau_patience >= 0, "train.plateau_patience must be >= 0")
        _check(self.val_every >= 1, f"train.val_every must be >= 1, got {self.val_every}")
        _check(
            self.accelerator in ACCELERATORS,
            f"train.accelerator must be one of {', '.join(ACCELERATORS)}, got {self.accelerator!r}",
        )
        if self.precision in LEGACY_PRECISIONS:  # migration of older configs
            object.__setattr__(self, "precision", LEGACY_PRECISIONS[self.precision])
        _check(
            self.precision in PRECISIONS,
            f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}",
        )
        _check(0 < self.threshold < 1, "train.threshold must be in (0, 1)")


@dataclass(frozen=True)
class Config:
    """A whole experiment: one method (the same for every dataset).

    ``method`` is the name results are filed under (``results/<dataset>/<method>``); the
    sections hold every setting.
    """

    method: str = "pen_att"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Every field of every section: ``{"method": ..., "data": {...}, ...}``."""
        return asdict(self)

    def to_yaml(self) -> str:
        """The complete config as YAML, fields in declaration order (what ``config.yaml``
        of a run holds and ``config_sha256`` hashes)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


#: The method the base is: the paper's PseudoEdgeNet with g and h.
BASE_METHOD = "pen_att"


def default_config() -> Config:
    """The base: the paper's method (PseudoEdgeNet with the small g and h, ``pen_att``).

    Every other layer (:func:`resolve_config`) is an overlay of the keys it changes relative
    to this; ``configs/methods/pen_att.yaml`` changes nothing. It is the dataclass defaults
    plus one key, ``loss.edge_warmup_epochs=5``: the dataclass default stays 0 so that the
    unit tests' tiny configs, built from ``Config()``, train g and h from the first step.
    """
    return Config(method=BASE_METHOD, loss=LossConfig(edge_warmup_epochs=5))


SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}

#: A decimal number as a string: YAML 1.1 (``yaml.safe_load``) reads ``1e-3`` and ``5E-4``,
#: which have no dot, as strings; a float field takes them as numbers.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(section: str, cls: type, key: str, value: Any) -> Any:
    types = {f.name: f.type for f in fields(cls)}
    t = str(types[key])
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "float":
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)
        if not is_number:
            raise ConfigError(
                f"{section}.{key} expects a number (e.g. 0.001 or 1e-3), got {value!r}"
            )
        return float(value)
    if t == "str" and is_number:
        return str(value)
    expected = {"int": int, "str": str, "bool": bool}.get(t)
    if expected and (
        not isinstance(value, expected) or (expected is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{section}.{key} expects {t}, got {value!r}")
    return value


def config_from_dict(d: dict[str, Any]) -> Config:
    """Builds and validates a :class:`Config` from a mapping of sections; keys it leaves
    out take the *dataclass* defaults (not the base: for overlays, use :func:`apply_overlay`).
    Unknown sections or keys are errors."""
    if not isinstance(d, dict):
        raise ConfigError("config must be a mapping")
    unknown = set(d) - set(SECTIONS) - {"method"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {sorted(unknown)}")
    method = d.get("method", Config.method)
    if method is None or method == "":
        raise ConfigError("method must be a name, e.g. pen_att")
    kwargs: dict[str, Any] = {"method": str(method)}
    for name, cls in SECTIONS.items():
        sec = d.get(name) or {}
        if not isinstance(sec, dict):
            raise ConfigError(f"section {name!r} must be a mapping")
        valid = {f.name for f in fields(cls)}
        bad = set(sec) - valid
        if bad:
            raise ConfigError(f"unknown key(s) in {name}: {sorted(bad)}; valid: {sorted(valid)}")
        kwargs[name] = cls(**{k: _coerce(name, cls, k, v) for k, v in sec.items()})
    return Config(**kwargs)


def apply_overlay(cfg: Config, overlay: Mapping[str, Any]) -> Config:
    """``cfg`` with the keys that ``overlay`` names replaced, validated as a whole.

    Args:
        cfg: the config below.
        overlay: ``{"method": name, "model": {"edge": "none", ...}, ...}``: any subset of
            the sections and keys of a config (``None`` for an empty section). An overlay
            with every key (a run's ``config.yaml``) replaces everything.

    Raises:
        ConfigError: an unknown section or key, a section that is not a mapping, a value
            of the wrong type or an invalid combination.
    """
    unknown = set(overlay) - set(SECTIONS) - {"method"}
    if unknown:
        raise ConfigError(
            f"unknown config section(s): {sorted(unknown)}; valid: method, {', '.join(SECTIONS)}"
        )
    d = cfg.to_dict()
    if "method" in overlay:
        d["method"] = overlay["method"]
    for name in SECTIONS:
        sec = overlay.get(name)
        if sec is None:
            continue
        if not isinstance(sec, Mapping):
            raise ConfigError(f"section {name!r} must be a mapping of keys, got {sec!r}")
        d[name].update(sec)
    return config_from_dict(d)


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Applies ``section.key=value`` overrides (value parsed with ``yaml.safe_load``)."""
    d = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        if key == "method":
            d["method"] = str(value)
            continue
        parts = key.split(".")
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise ConfigError(
                f"override key {key!r} must be section.key with section in {sorted(SECTIONS)}"
            )
        d[parts[0]][parts[1]] = value
    return config_from_dict(d)


def _packaged(kind: str) -> dict[str, Any]:
    """``{name: resource}`` of the packaged overlays ``configs/<kind>/<name>.yaml``
    (``importlib.resources``: the same from a checkout and from an installed wheel)."""
    folder = files("pseudoedgenet") / "configs" / kind
    return {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def method_names() -> tuple[str, ...]:
    """The packaged method overlays, one per row of the paper's Tables 1 and 2, sorted."""
    return tuple(sorted(_packaged("methods")))


def protocol_names() -> tuple[str, ...]:
    """The packaged protocol overlays (``cpu``, ``cpu-long``, ``demo``, ``paper``,
    ``smoke``), sorted."""
    return tuple(sorted(_packaged("protocols")))


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {d!r}")
    return d


def _overlay(cfg: Config, overlay: Mapping[str, Any], source: str) -> Config:
    try:
        return apply_overlay(cfg, overlay)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def method_overlay(name: str) -> dict[str, Any]:
    """The packaged overlay of a method (a row of Table 1 or 2), e.g. ``baseline`` ->
    ``{"method": "baseline", "model": {"edge": "none", "attention": False}, ...}``.

    Raises:
        ConfigError: no packaged method of that name (the valid ones listed).
    """
    methods = _packaged("methods")
    if name not in methods:
        raise ConfigError(f"unknown method {name!r}; packaged: {', '.join(sorted(methods))}")
    return _parse(methods[name].read_text(encoding="utf-8"), f"method {name}")


def protocol_overlay(name: str) -> dict[str, Any]:
    """The packaged overlay of a protocol, e.g. ``cpu`` -> ``{"train": {"epochs": 30}, ...}``.

    Raises:
        ConfigError: no packaged protocol of that name (the valid ones listed).
    """
    protocols = _packaged("protocols")
    if name not in protocols:
        raise ConfigError(f"unknown protocol {name!r}; valid: {', '.join(sorted(protocols))}")
    return _parse(protocols[name].read_text(encoding="utf-8"), f"protocol {name}")


def apply_protocol(cfg: Config, name: str) -> Config:
    """``cfg`` with a packaged protocol's overlay applied (a protocol never sets ``method``)."""
    overlay = protocol_overlay(name)
    if "method" in overlay:
        raise ConfigError(f"protocol {name}: a protocol overlay cannot set method")
    return _overlay(cfg, overlay, f"protocol {name}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path.parent.parent.name == "configs" and path.stem in method_names():
            raise ConfigError(
                f"{path}: not found; the per-dataset files configs/<dataset>/<method>.yaml "
                f"are packaged method overlays now: use --config {path.stem}"
            ) from None
        import difflib

        close = difflib.get_close_matches(path.name, method_names(), n=1)
        hint = f" (did you mean --config {close[0]}?)" if close else ""
        raise ConfigError(
            f"{path}: --config is neither a packaged method nor an existing YAML file{hint}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read the config ({reason})") from None
    return _parse(text, str(path))


def load_config(config: str | Path, overrides: Sequence[str] | None = None) -> Config:
    """The base, then ``config``, then ``overrides``.

    Args:
        config: a packaged method's name (``"baseline"``, :func:`method_names`; a ``str``
            only, and it wins over a file of that name) or a YAML file: an overlay of the
            keys it changes. A file whose ``method`` is a packaged method starts from that
            method (base, then its overlay, then the file); with another name or none, from
            the base. A file with every key (a run's ``config.yaml``) loads to exactly the
            config it holds.
        overrides: ``section.key=value`` strings (:func:`apply_overrides`).

    Raises:
        ConfigError: one line naming the file or method: not found (an old
            ``configs/<dataset>/<method>.yaml`` path names the method to use instead),
            invalid YAML, unknown keys or invalid values.
    """
    if isinstance(config, str) and config in method_names():
        cfg = _overlay(default_config(), method_overlay(config), f"method {config}")
    else:
        path = Path(config)
        named = isinstance(config, str) and not path.suffix and len(path.parts) == 1
        if named and not path.is_file():
            import difflib

            close = difflib.get_close_matches(str(config), method_names(), n=1)
            hint = f"did you mean --config {close[0]}? " if close else ""
            raise ConfigError(
                f"{config}: --config is neither a packaged method nor a YAML file; {hint}"
                f"methods: {', '.join(method_names())}"
            )
        overlay = _read_file(path)
        start = default_config()
        row = overlay.get("method")
        if isinstance(row, str) and row != BASE_METHOD and row in method_names():
            start = _overlay(start, method_overlay(row), f"method {row}")
        cfg = _overlay(start, overlay, str(path))
    return apply_overrides(cfg, overrides or [])


def resolve_config(
    config: str | Path | None = None,
    protocol: str | None = None,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    crop: int | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """The config of a run, every layer in one fixed order, each replacing what it names.

    1. the base, the paper's method (:func:`default_config`);
    2. ``config``: a packaged method's name or a user's YAML file (:func:`load_config`;
       ``None``: the base alone);
    3. ``protocol``: a packaged protocol (:func:`protocol_names`; ``None``: none);
    4. the shortcuts ``epochs``, ``max_steps``, ``crop`` (``--epochs``, ``--max-steps``,
       ``--crop``), each ``None`` to leave it;
    5. ``overrides``: ``section.key=value`` (``--set``), in order.

    The CLI's ``train``, ``crossval`` and ``holdout``, the demo and the benchmarks all build
    their configs here.

    Raises:
        ConfigError: one line naming the option, file, method or protocol at fault.
    """
    for option, value in (("--epochs", epochs), ("--max-steps", max_steps), ("--crop", crop)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be >= 1, got {value}")
    if crop is not None and crop % 32:
        raise ConfigError(f"--crop must be a multiple of 32, got {crop}")
    cfg = default_config() if config is None else load_config(config)
    if protocol is not None:
        cfg = apply_protocol(cfg, protocol)
    flags = [f"train.epochs={epochs}"] if epochs is not None else []
    flags += [f"train.max_steps={max_steps}"] if max_steps is not None else []
    flags += [f"data.crop={crop}"] if crop is not None else []
    return apply_overrides(cfg, [*flags, *overrides])


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(configs: Sequence[Config | Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The settings on which configs disagree: the one comparison of configs (a resumed
    run's against its saved one, the folds of a report cell).

    Args:
        configs: configs, or their nested mappings (``Config.to_dict``, a record's
            ``config``).

    Returns:
        ``{"section.key": [value per config]}`` for every key whose value is not the same
        in all configs, in the order keys first appear; a mapping without the key
        contributes ``None`` (no setting of this package is ``None``). Empty when all agree.
    """
    flats = [_flatten(c.to_dict() if isinstance(c, Config) else c) for c in configs]
    keys = dict.fromkeys(k for f in flats for k in f)
    out: dict[str, list[Any]] = {}
    for k in keys:
        values = [f.get(k) for f in flats]
        if any(v != values[0] for v in values):
            out[k] = values
    return out


__all__ = [
    "BASE_METHOD",
    "Config",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overlay",
    "apply_overrides",
    "apply_protocol",
    "config_differences",
    "config_from_dict",
    "default_config",
    "load_config",
    "method_names",
    "method_overlay",
    "protocol_names",
    "protocol_overlay",
    "resolve_config",
]
