"""Sobel, losses and networks: hand-computed cases and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch

from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.engine.module import PseudoEdgeNetModule
from pseudoedgenet.errors import ConfigError
from pseudoedgenet.losses import edge_l1, local_crf_loss, point_bce
from pseudoedgenet.models import MODELS, SmallEdgeNet, build_model, sobel, zero_output_conv

LN2 = math.log(2.0)


def test_sobel_on_ramp_and_step() -> None:
    x = torch.arange(8, dtype=torch.float32) * 0.1
    ramp = x.view(1, 1, 1, 8).expand(1, 1, 6, 8).contiguous()
    g = sobel(ramp)
    assert g.shape == (1, 2, 6, 8)
    # interior: (0.1 * 2) * (1 + 2 + 1) = 0.8; replicate padding halves it at the borders
    assert torch.allclose(g[0, 0, :, 1:-1], torch.full((6, 6), 0.8))
    assert torch.allclose(g[0, 0, :, 0], torch.full((6,), 0.4))
    assert torch.allclose(g[0, 1], torch.zeros(6, 8), atol=1e-6)
    step = torch.zeros(1, 1, 5, 10)
    step[..., 5:] = 1.0
    gx = sobel(step)[0, 0]
    assert torch.allclose(gx[:, 4], torch.full((5,), 4.0))
    assert torch.allclose(gx[:, 5], torch.full((5,), 4.0))
    assert gx[:, [0, 1, 2, 3, 6, 7, 8, 9]].abs().max() == 0
    # y channel: transposed step is positive downwards; normalised kernel divides by 8
    gy = sobel(step.transpose(2, 3), normalized=True)[0, 1]
    assert torch.allclose(gy[4, :], torch.full((5,), 0.5))


def test_sobel_rejects_multichannel() -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        sobel(torch.zeros(1, 2, 4, 4))


def _labels() -> torch.Tensor:
    lab = torch.full((1, 1, 2, 3), 255, dtype=torch.uint8)
    lab[0, 0, 0, 0] = 1
    lab[0, 0, 1, 1] = 0
    lab[0, 0, 1, 2] = 0
    return lab


def test_point_bce_hand_computed() -> None:
    logits = torch.zeros(1, 1, 2, 3)
    lab = _labels()
    assert point_bce(logits, lab).item() == pytest.approx(1.1 * LN2)
    assert point_bce(logits, lab, normalization="pixel").item() == pytest.approx(
        (LN2 + 2 * 0.1 * LN2) / 3
    )
    # a confident right answer on the positive: bce = log(1 + e^-3)
    logits[0, 0, 0, 0] = 3.0
    assert point_bce(logits, lab).item() == pytest.approx(math.log1p(math.exp(-3)) + 0.1 * LN2)


def test_point_bce_ignores_255_and_takes_3d_labels() -> None:
    logits = torch.zeros(1, 1, 2, 3)
    base = point_bce(logits, _labels()).item()
    logits[0, 0, 0, 1] = 50.0  # an ignored pixel
    logits[0, 0, 0, 2] = -50.0
    assert point_bce(logits, _labels()).item() == pytest.approx(base)
    assert point_bce(logits, _labels()[:, 0]).item() == pytest.approx(base)
    empty = torch.full((1, 1, 2, 3), 255, dtype=torch.uint8)
    assert point_bce(logits, empty).item() == 0.0


def test_point_bce_is_stable_for_huge_logits() -> None:
    logits = torch.tensor([[[[1e4, -1e4]]]])
    lab = torch.tensor([[[[0, 1]]]], dtype=torch.uint8)
    val = point_bce(logits, lab)
    assert torch.isfinite(val) and val.item() == pytest.approx(1e4 + 0.1 * 1e4)


def test_edge_l1_hand_computed() -> None:
    a = torch.zeros(1, 2, 2, 2)
    b = torch.zeros(1, 2, 2, 2)
    b[0, 0, 0, 0] = 2.0
    b[0, 1, 1, 1] = -4.0
    assert edge_l1(a, b).item() == pytest.approx(6.0 / 8)


def test_local_crf_loss_zero_for_hard_constant_and_positive_at_cuts() -> None:
    img = torch.full((1, 3, 16, 16), 100.0)
    ones = torch.ones(1, 1, 16, 16)
    assert local_crf_loss(ones, img, downsample=1, radius=2).item() == pytest.approx(0.0)
    half = torch.zeros(1, 1, 16, 16)
    half[..., 8:] = 1
    cut_same_colour = local_crf_loss(half, img, downsample=1, radius=2).item()
    img2 = img.clone()
    img2[..., 8:] = 250.0
    cut_at_edge = local_crf_loss(half, img2, downsample=1, radius=2).item()
    assert cut_same_colour > 0 and cut_at_edge < 1e-6 * cut_same_colour + 1e-12


def test_small_g_default_is_4_conv_64_filters() -> None:
    g = SmallEdgeNet()
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 4 and len(bns) == 3
    assert [c.out_channels for c in convs] == [64, 64, 64, 2]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert isinstance(g[-1], torch.nn.Conv2d)  # the last layer is linear


@pytest.mark.parametrize(
    ("name", "kwargs", "channels"),
    [
        ("segnet_fpn", {"encoder": "resnet18"}, 1),
        ("edge_small", {"layers": 2}, 2),
        ("edge_fpn", {"encoder": "resnet18"}, 2),
        ("attention_fpn", {}, 1),
    ],
)
def test_registry_models_forward_backward(name: str, kwargs: dict, channels: int) -> None:
    assert name in MODELS
    net = build_model(name, **kwargs)
    x = torch.randn(2, 3, 64, 64)
    y = net(x)
    assert y.shape == (2, channels, 64, 64)
    y.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_registry_typo_lists_names() -> None:
    with pytest.raises(ConfigError, match=r"valid names: .*edge_small"):
        build_model("edge_smal")


def _tiny_cfg(*extra: str) -> Config:
    return apply_overrides(
        Config(), ["model.encoder=resnet18", "train.channels_last=false", *extra]
    )


def _edge_only_batch() -> dict[str, torch.Tensor]:
    return {
        "image": torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8),
        "labels": torch.full((2, 64, 64), 255, dtype=torch.uint8),  # no CE signal at all
        "mask": torch.zeros(2, 64, 64, dtype=torch.uint8),
    }


def _grad_norms(module: PseudoEdgeNetModule) -> dict[str, float]:
    return {
        part: sum(
            float(p.grad.abs().sum())
            for p in getattr(module.net, part).parameters()
            if p.grad is not None
        )
        for part in ("f", "g", "h")
    }


def test_edge_loss_gradient_reaches_f_g_h() -> None:
    torch.manual_seed(0)
    module = PseudoEdgeNetModule(_tiny_cfg("model.edge_init=default"))
    losses = module.compute_losses(_edge_only_batch())
    assert losses["ce"].item() == 0.0 and losses["edge"].item() > 0
    losses["loss"].backward()
    norms = _grad_norms(module)
    assert all(v > 0 for v in norms.values()), norms


def test_zero_init_edge_starts_at_zero_and_h_gets_gradient_after_one_step() -> None:
    torch.manual_seed(0)
    module = PseudoEdgeNetModule(_tiny_cfg("model.edge_init=zero"))
    batch = _edge_only_batch()
    diagnostics: dict[str, torch.Tensor] = {}
    losses = module.compute_losses(batch, diagnostics)
    # g ⊗ h == 0 exactly, so the L1 term equals mean |s(f)| and explains none of it
    assert diagnostics["edge_fit"].item() == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < diagnostics["attention"].item() < 1.0
    losses["loss"].backward()
    norms = _grad_norms(module)
    assert norms["f"] > 0 and norms["g"] > 0 and norms["h"] == 0.0  # h waits for g
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    module.zero_grad()
    module.compute_losses(batch)["loss"].backward()
    assert _grad_norms(module)["h"] > 0


def test_zero_output_conv_zeroes_only_the_output_layer() -> None:
    for net in (build_model("edge_small"), build_model("edge_fpn", encoder="resnet18")):
        zero_output_conv(net)
        net.eval()
        with torch.no_grad():
            out = net(torch.randn(1, 3, 64, 64))
        assert out.shape[1] == 2 and float(out.abs().max()) == 0.0
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert float(convs[0].weight.abs().sum()) > 0


@pytest.mark.parametrize(
    ("overrides", "terms"),
    [
        (["model.edge=none", "model.attention=false"], {"ce", "loss"}),
        (["model.attention=false"], {"ce", "edge", "loss"}),
        (["loss.edge_warmup_epochs=1"], {"ce", "loss"}),  # epoch 0 is still warming up
        (
            ["model.edge=none", "model.attention=false", "loss.crf_weight=1.0"],
            {"ce", "crf", "loss"},
        ),
        (  # epoch 0 is before the CRF term joins
            [
                "model.edge=none",
                "model.attention=false",
                "loss.crf_weight=1.0",
                "loss.crf_warmup_epochs=1",
            ],
            {"ce", "loss"},
        ),
        (["model.edge=none", "model.attention=false", "loss.supervision=masks"], {"ce", "loss"}),
    ],
)
def test_methods_have_their_loss_terms(overrides: list[str], terms: set[str]) -> None:
    module = PseudoEdgeNetModule(_tiny_cfg(*overrides))
    batch = {
        "image": torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8),
        "labels": torch.randint(0, 2, (1, 64, 64), dtype=torch.uint8),
        "mask": torch.randint(0, 2, (1, 64, 64), dtype=torch.uint8),
    }
    losses = module.compute_losses(batch)
    assert set(losses) == terms
    total = sum(v for k, v in losses.items() if k != "loss")
    assert losses["loss"].item() == pytest.approx(float(total.detach()))


def test_fpn_merge_is_the_sum_of_its_branches() -> None:
    """The FPN's merge (a chain of additions) equals smp's stacked sum, element by element."""
    from segmentation_models_pytorch.decoders.fpn.decoder import MergeBlock

    from pseudoedgenet.models.networks import AddMerge

    net = build_model("segnet_fpn", encoder="resnet18")
    assert isinstance(net.decoder.merge, AddMerge)
    torch.manual_seed(0)
    branches = [torch.randn(2, 8, 5, 7) for _ in range(4)]
    assert torch.allclose(AddMerge()(branches), MergeBlock("add")(branches), atol=1e-6)
    ones = [torch.full((1, 1, 2, 2), float(v)) for v in (1, 2, 3, 4)]
    assert torch.equal(AddMerge()(ones), torch.full((1, 1, 2, 2), 10.0))


def test_local_crf_loss_exact_value_for_a_constant_soft_output() -> None:
    """p = 0.5 on a flat image: every pixel pays 2 p (1 - p) = 0.5 per neighbour, weighted by
    the spatial kernel (4 axis neighbours at d² = 1, 4 diagonal at d² = 2, σ_xy = 5)."""
    img = torch.full((1, 3, 4, 4), 80.0)
    prob = torch.full((1, 1, 4, 4), 0.5)
    expected = 0.5 * (4 * math.exp(-1 / 50) + 4 * math.exp(-2 / 50))
    got = local_crf_loss(prob, img, sigma_xy=5.0, radius=1, downsample=1).item()
    assert got == pytest.approx(expected, rel=1e-6)


class _Const(torch.nn.Module):
    """A stand-in network: ``(N, 3, H, W) -> (N, C, H, W)`` filled with ``value``."""

    def __init__(self, channels: int, value: float) -> None:
        super().__init__()
        self.channels, self.value = channels, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return torch.full((n, self.channels, h, w), self.value)


def test_pseudo_edge_is_scaled_g_times_sigmoid_of_scaled_h() -> None:
    """Eq. (2) with the output scales: edge = γ_g g(I) · sigmoid(γ_h h(I)); g = 3, h = 2,
    γ_g = 0.02, γ_h = 0.05 give raw edge 0.06, attention sigmoid(0.1)."""
    from pseudoedgenet.models.networks import PseudoEdgeNet

    x = torch.zeros(1, 3, 4, 5)
    net = PseudoEdgeNet(_Const(1, 0.0), _Const(2, 3.0), _Const(1, 2.0), 0.02, 0.05)
    out = net(x)
    att = 1.0 / (1.0 + math.exp(-0.1))
    assert out["logits"].shape == (1, 1, 4, 5)
    assert torch.allclose(out["raw_edge"], torch.full((1, 2, 4, 5), 0.06))
    assert torch.allclose(out["attention"], torch.full((1, 1, 4, 5), att))
    assert torch.allclose(out["edge"], torch.full((1, 2, 4, 5), 0.06 * att))
    no_h = PseudoEdgeNet(_Const(1, 0.0), _Const(2, 3.0), None, 0.02, 0.05)(x)
    assert "attention" not in no_h and torch.equal(no_h["edge"], no_h["raw_edge"])
    assert set(net(x, edges=False)) == {"logits"}  # warm-up: g and h are not run


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # per-class: pos_w · mean bce(positives) + neg_w · mean bce(negatives), logit 1
        # everywhere: a positive pays ln(1 + e^-1), a negative ln(1 + e); λ · |0 − 0.25|
        (
            ["loss.pos_weight=2", "loss.neg_weight=0.3", "loss.edge_weight=3"],
            {"ce": 2 * math.log1p(math.exp(-1)) + 0.3 * math.log1p(math.e), "edge": 0.75},
        ),
        # the paper's weights 1 / 0.1 and λ = 1
        ([], {"ce": math.log1p(math.exp(-1)) + 0.1 * math.log1p(math.e), "edge": 0.25}),
        # full supervision: plain mean BCE over every pixel of the mask (3 of 8 are nucleus)
        (
            ["model.edge=none", "loss.supervision=masks", "loss.pos_weight=2"],
            {"ce": (3 * math.log1p(math.exp(-1)) + 5 * math.log1p(math.e)) / 8},
        ),
    ],
)
def test_loss_terms_are_weighted_as_configured(
    overrides: list[str], expected: dict[str, float]
) -> None:
    """compute_losses with stand-in networks: f = logit 1 everywhere (so s(f) = 0), g = 0.25
    and no h; labels with 1 positive, 2 negatives and 5 unlabelled pixels."""
    from pseudoedgenet.models.networks import PseudoEdgeNet

    cfg = _tiny_cfg("loss.edge_warmup_epochs=0", "model.attention=false", *overrides)
    module = PseudoEdgeNetModule(cfg)
    g = _Const(2, 0.25) if cfg.model.edge != "none" else None
    module.net = PseudoEdgeNet(_Const(1, 1.0), g, None)
    labels = torch.full((1, 2, 4), 255, dtype=torch.uint8)
    labels[0, 0, 0] = 1
    labels[0, 1, 2:] = 0
    mask = torch.zeros((1, 2, 4), dtype=torch.uint8)
    mask[0, 0, :3] = 1
    batch = {"image": torch.zeros(1, 3, 2, 4), "labels": labels, "mask": mask}
    losses = module.compute_losses(batch)
    assert set(losses) == {*expected, "loss"}
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-6), key
    assert losses["loss"].item() == pytest.approx(sum(expected.values()), rel=1e-6)


def test_crf_term_is_weighted_and_its_colour_kernel_counts() -> None:
    """Two pixels, p = (1, 0), colours 15 apart in one channel (σ_rgb = 15: colour term
    e^-0.5), radius 1 with replicate padding: each pixel sees the other through 3
    neighbours (d² = 1, 2, 2), so loss = e^-0.5 (e^-1/50 + 2 e^-2/50)."""
    img = torch.zeros(1, 3, 1, 2)
    img[0, 0, 0, 1] = 15.0
    prob = torch.tensor([[[[1.0, 0.0]]]])
    expected = math.exp(-0.5) * (math.exp(-1 / 50) + 2 * math.exp(-2 / 50))
    got = local_crf_loss(prob, img, sigma_rgb=15.0, sigma_xy=5.0, radius=1, downsample=1)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # same colours: only the spatial kernel is left
    same = local_crf_loss(prob, torch.zeros(1, 3, 1, 2), 15.0, 5.0, 1, 1).item()
    assert same == pytest.approx(math.exp(-1 / 50) + 2 * math.exp(-2 / 50), rel=1e-6)
    # downsample 2 on a 2 x 4 image: 2 x 2 averages give the same 1 x 2 case
    big_img = img.repeat_interleave(2, 2).repeat_interleave(2, 3)
    big_prob = prob.repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert local_crf_loss(big_prob, big_img, 15.0, 5.0, 1, 2).item() == pytest.approx(
        expected, rel=1e-6
    )
