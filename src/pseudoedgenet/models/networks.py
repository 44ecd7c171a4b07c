"""The three networks of PseudoEdgeNet, made by name from a registry.

- f, the segmentation network: FPN with a ResNet-50 encoder, 1 output channel (logits;
  the sigmoid is applied by the loss / at inference).
- g, the edge network: small (``n`` 3x3 conv layers of 64 filters, BN + ReLU after each
  but the last, which outputs 2 linear channels: x and y edges) or large (an FPN with a
  2-channel linear output, Table 2).
- h, the attention network: FPN with a ResNet-18 encoder and a 1-channel sigmoid output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from pseudoedgenet.errors import ConfigError

PRETRAINED = {"none": None, "imagenet": "imagenet"}


def fpn(encoder: str = "resnet50", out_channels: int = 1, pretrained: str = "none") -> nn.Module:
    """An FPN (Lin et al. 2017) from segmentation-models-pytorch with a linear head.

    Args:
        encoder: ``resnet18``, ``resnet34``, ``resnet50`` (any smp encoder name).
        out_channels: number of output channels.
        pretrained: ``none`` (random init, the default here) or ``imagenet`` (downloads
            weights: needs internet).

    Returns:
        Module mapping ``(N, 3, H, W)`` to ``(N, out_channels, H, W)``; H and W must be
        multiples of 32.
    """
    if pretrained not in PRETRAINED:
        raise ConfigError(f"pretrained must be one of {sorted(PRETRAINED)}, got {pretrained!r}")
    model = smp.FPN(
        encoder_name=encoder,
        encoder_weights=PRETRAINED[pretrained],
        classes=out_channels,
        activation=None,
    )
    model.decoder.merge = AddMerge()
    return model


class AddMerge(nn.Module):
    """The FPN's "add" merge of its pyramid branches, as a chain of additions.

    Same sum as segmentation-models-pytorch's ``MergeBlock("add")``, which stacks the
    branches into one 5-D tensor and reduces it: on CPU that copy and reduction were among
    the most expensive operators of f's bf16 forward (``torch.profiler``: ``aten::sum``,
    ``aten::cat``); plain additions avoid both. No parameters, so checkpoints are
    unchanged.

    Shape:
        list of ``(N, C, H, W)`` tensors -> ``(N, C, H, W)``.
    """

    def forward(self, branches: list[torch.Tensor]) -> torch.Tensor:
        out = branches[0]
        for b in branches[1:]:
            out = out + b
        return out


class SmallEdgeNet(nn.Sequential):
    """The small edge network g: ``layers`` 3x3 convolutions.

    Every layer but the last has ``width`` filters followed by batch norm and ReLU; the
    last maps to 2 linear channels (x edge, y edge). Padding 1 keeps the size.

    Shape:
        (N, 3, H, W) -> (N, 2, H, W).
    """

    def __init__(self, layers: int = 4, width: int = 64, in_channels: int = 3) -> None:
        if layers < 1:
            raise ConfigError(f"edge network needs at least 1 layer, got {layers}")
        mods: list[nn.Module] = []
        c = in_channels
        for _ in range(layers - 1):
            mods += [
                nn.Conv2d(c, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            c = width
        mods.append(nn.Conv2d(c, 2, 3, padding=1))
        super().__init__(*mods)


def zero_output_conv(net: nn.Module) -> nn.Module:
    """Sets the weights and bias of ``net``'s output convolution to zero, in place.

    The output convolution is the last ``nn.Conv2d`` in module order (the last layer of
    :class:`SmallEdgeNet`, the segmentation head of an smp FPN). The network then outputs
    exactly 0 at first while its gradients stay non-zero (they flow through the
    convolution's input features, which are not zero).

    Returns:
        ``net`` itself.
    """
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError(f"{type(net).__name__} has no Conv2d to initialise")
    last = convs[-1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
    return net


def _segnet(encoder: str = "resnet50", pretrained: str = "none") -> nn.Module:
    return fpn(encoder, 1, pretrained)


def _edge_small(layers: int = 4, width: int = 64) -> nn.Module:
    return SmallEdgeNet(layers, width)


def _edge_fpn(encoder: str = "resnet50", pretrained: str = "none") -> nn.Module:
    return fpn(encoder, 2, pretrained)


def _attention(encoder: str = "resnet18", pretrained: str = "none") -> nn.Module:
    return fpn(encoder, 1, pretrained)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "segnet_fpn": _segnet,
    "edge_small": _edge_small,
    "edge_fpn": _edge_fpn,
    "attention_fpn": _attention,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Makes a network by registry name.

    Args:
        name: one of ``segnet_fpn``, ``edge_small``, ``edge_fpn``, ``attention_fpn``.
        **kwargs: the constructor's arguments (see each builder).

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or bad arguments.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None


class PseudoEdgeNet(nn.Module):
    """f with its training-time helpers g (edge network) and h (attention), Eq. (1)-(2).

    Args:
        f: segmentation network, ``(N, 3, H, W) -> (N, 1, H, W)`` logits.
        g: edge network ``(N, 3, H, W) -> (N, 2, H, W)`` or ``None`` (baseline).
        h: attention network ``(N, 3, H, W) -> (N, 1, H, W)`` logits or ``None``.
        edge_scale: γ_g; the pseudo edge is ``γ_g · g(I)``.
        attention_scale: γ_h; the attention is ``sigmoid(γ_h · h(I))``.

    The scales do not change what the networks can express (the output layers' weights
    absorb them); they slow g's and h's outputs under Adam (see
    :class:`pseudoedgenet.config.ModelConfig`).

    ``forward(x, edges=True)`` returns a dict: ``logits`` (N, 1, H, W) always; with
    ``edges`` (g and h are skipped otherwise), ``edge`` = γ_g g(I) ⊗ h(I) (N, 2, H, W)
    when g exists, plus ``raw_edge`` = γ_g g(I) and ``attention`` = sigmoid(γ_h h(I))
    (N, 1, H, W) when h exists.
    """

    def __init__(
        self,
        f: nn.Module,
        g: nn.Module | None = None,
        h: nn.Module | None = None,
        edge_scale: float = 1.0,
        attention_scale: float = 1.0,
    ):
        super().__init__()
        if h is not None and g is None:
            raise ConfigError("an attention network h needs an edge network g")
        self.f, self.g, self.h = f, g, h
        self.edge_scale, self.attention_scale = edge_scale, attention_scale

    def edges(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """g and h alone (f is not run): ``edge``, ``raw_edge`` and ``attention`` as in
        :meth:`forward`; empty without g."""
        out: dict[str, torch.Tensor] = {}
        if self.g is None:
            return out
        raw = self.g(x)
        if self.edge_scale != 1.0:
            raw = raw * self.edge_scale
        out["raw_edge"] = raw
        if self.h is None:
            out["edge"] = raw
            return out
        logits = self.h(x)
        if self.attention_scale != 1.0:
            logits = logits * self.attention_scale
        out["attention"] = torch.sigmoid(logits)
        out["edge"] = raw * out["attention"]
        return out

    def forward(self, x: torch.Tensor, edges: bool = True) -> dict[str, torch.Tensor]:
        out = {"logits": self.f(x)}
        if edges:
            out.update(self.edges(x))
        return out
