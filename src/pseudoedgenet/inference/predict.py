"""Sliding-window prediction of f on images of any size, stitched in one pass.

:func:`predict_tiles` is the engine: it reads tiles through any ``box -> pixels`` function
(an in-memory image, a whole-slide reader), batches them, runs any predictor callable,
and hands each tile's write region to a ``write`` callback (a preallocated array, a
memory-mapped or chunked store). Reading the next batch overlaps with the forward pass
of the current one (one prefetch thread; decoding slide tiles releases the GIL).
:func:`predict_probability` is the in-memory convenience wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm.auto import tqdm

from pseudoedgenet.config import PRECISIONS as PRECISIONS
from pseudoedgenet.data.slide import read_window
from pseudoedgenet.errors import ConfigError
from pseudoedgenet.hardware import autocast_dtype, choose_precision
from pseudoedgenet.inference.tiling import Tile, make_tiles
from pseudoedgenet.models.trained import run_padded

Predictor = Callable[[torch.Tensor], torch.Tensor]
#: ``(y0, y1, x0, x1)`` box (may exceed the image: reflect) -> ``(y1-y0, x1-x0, 3)`` uint8.
WindowReader = Callable[[tuple[int, int, int, int]], np.ndarray]
#: called with a tile and the ``(h, w)`` float32 probabilities of its write region.
TileWriter = Callable[[Tile, np.ndarray], None]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error.

    Raises:
        ConfigError: an unknown device name or CUDA requested but unavailable.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: expected auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested, but CUDA is not available on this machine")
    return dev


def _fold_pairs(root: nn.Module, module: nn.Module, graph: fx.Graph, prefix: str) -> int:
    """Folds the batch norms of ``module``'s traced ``graph`` into their convolutions.

    A pair is folded when a ``BatchNorm2d`` call takes a ``Conv2d`` call's output as its
    input, that output feeds nothing else, and each of the two modules is called once in
    the graph; the fused convolution replaces the ``Conv2d`` in ``root`` (at
    ``prefix`` + its name in ``module``) and the batch norm becomes ``nn.Identity``.
    """
    calls = [n for n in graph.nodes if n.op == "call_module"]
    times_called: dict[str, int] = {}
    for n in calls:
        times_called[str(n.target)] = times_called.get(str(n.target), 0) + 1
    folded = 0
    for n in calls:
        bn = module.get_submodule(str(n.target))
        if not isinstance(bn, nn.BatchNorm2d) or not n.args:
            continue
        src = n.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv = module.get_submodule(str(src.target))
        if not isinstance(conv, nn.Conv2d) or times_called[str(n.target)] != 1:
            continue
        if times_called[str(src.target)] != 1:
            continue
        for name, new in ((src.target, fuse_conv_bn_eval(conv, bn)), (n.target, nn.Identity())):
            parent, _, attr = f"{prefix}{name}".rpartition(".")
            setattr(root.get_submodule(parent), attr, new)
        folded += 1
    return folded


def fuse_conv_bn(model: nn.Module) -> int:
    """Folds every batch norm into the convolution that feeds it, in place (eval only).

    Pairs come from the module graph, not from attribute names: each module is traced
    with ``torch.fx.symbolic_trace``, and a ``BatchNorm2d`` whose input is the output of a
    ``Conv2d`` used by nothing else is folded into it (each called once in that graph).
    A module that cannot be traced (data-dependent control flow, such as the input-shape
    checks of smp's FPN or :class:`~pseudoedgenet.models.trained.Segmenter`'s padding) is
    handled child by child. In a ResNet encoder this folds the stem, every block's conv/bn
    pairs and the down-sampling shortcuts; g's small network is a traceable
    ``nn.Sequential``. The fused weights come from
    :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`; the batch norm becomes
    ``nn.Identity``. Same function in exact arithmetic (fp32 outputs agree to ~1e-5);
    saves the normalisation pass over every activation. The model must be in eval mode
    and is not trainable afterwards.

    Args:
        model: any module; batch norms not fed directly by a convolution are left alone.

    Returns:
        The number of batch norms folded (0 on a second call).

    Raises:
        ValueError: ``model`` is in training mode.
    """
    if model.training:
        raise ValueError("fuse_conv_bn needs a model in eval mode")

    def visit(module: nn.Module, prefix: str) -> int:
        if not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
            return 0
        try:
            graph = fx.symbolic_trace(module).graph
        except Exception:  # not traceable as a whole: its children one by one
            return sum(visit(child, f"{prefix}{name}.") for name, child in module.named_children())
        return _fold_pairs(model, module, graph, prefix)

    return visit(model, "")


class FixedBatch(nn.Module):
    """Pads the last, smaller batch of a tiled run so that a compiled model compiles once.

    ``torch.compile`` specialises on input shapes: the last batch of tiles would trigger
    a second compilation (tens of seconds on a CPU). A batch smaller than ``batch_size``
    whose sample shape has already been seen in a full batch is padded with zeros and the
    extra outputs dropped; anything else (e.g. a whole-image pass of batch 1) runs as is.

    Shape:
        ``(N, C, H, W)`` -> the model's output for those ``N`` inputs.
    """

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.model, self.batch_size = model, batch_size
        self._full: set[tuple[int, ...]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, sample = x.shape[0], tuple(x.shape[1:])
        if n == self.batch_size:
            self._full.add(sample)
        if n >= self.batch_size or sample not in self._full:
            return self.model(x)
        pad = x.new_zeros((self.batch_size - n, *sample))
        padded = torch.cat([x, pad]).contiguous(memory_format=_memory_format(x))
        return self.model(padded)[:n]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


def prepare_predictor(
    model: nn.Module,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    channels_last: bool = True,
    fuse: bool = True,
    compile_batch: int | None = None,
) -> tuple[nn.Module, torch.dtype | None]:
    """Puts a model in inference form and chooses its autocast precision.

    The fast path: eval mode, batch norms folded into their convolutions
    (:func:`fuse_conv_bn`), channels-last weights, and autocast at the precision
    :func:`pseudoedgenet.hardware.choose_precision` picks (the rule training uses too:
    ``auto`` = fp16 on CUDA, bf16 on CPUs with native bf16, fp32 elsewhere). ``fp32``
    disables autocast. A precision
    the device cannot run falls back to fp32 (checked with one tiny forward pass). The
    model is modified in place: use it for inference only.

    Args:
        model: ``(N, 3, H, W)`` RGB 0..255 -> ``(N, 1, H, W)`` logits (a ``Segmenter``).
        device: where to run it.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        channels_last: convert the weights to channels-last memory format (pass the same
            flag to :func:`predict_tiles`).
        fuse: fold batch norms into convolutions.
        compile_batch: if given, ``torch.compile`` the model (Inductor, weights frozen
            as constants) behind :class:`FixedBatch` with this batch size. The first call
            per input size compiles (about 25 s for FPN-ResNet50 on 2 CPU cores, needs
            a C++ compiler on CPU); afterwards tiled inference ran 1.37x faster than the
            eager fast path on 2 CPU cores. Worth it for slides and large batches of
            same-size images.

    Returns:
        ``(model, autocast_dtype)``: the model on ``device`` and the dtype for
        :func:`predict_tiles` (``None`` = fp32).

    Raises:
        ConfigError: a precision outside :data:`pseudoedgenet.config.PRECISIONS`.
    """
    dev = torch.device(device)
    dtype = autocast_dtype(choose_precision(precision, dev))
    model = model.eval().to(dev)
    if fuse:
        fuse_conv_bn(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dtype is not None:
        try:
            x = torch.zeros(1, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype):
                model(x)
        except (RuntimeError, NotImplementedError):
            dtype = None
    if compile_batch is not None:
        compiled = torch.compile(model, dynamic=False, options={"freezing": True})
        model = FixedBatch(compiled, compile_batch)  # type: ignore[arg-type]
    return model, dtype


def predict_tiles(
    predictor: Predictor,
    read: WindowReader,
    tiles: Sequence[Tile],
    write: TileWriter,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    prefetch: bool = True,
    channels_last: bool = True,
    desc: str = "tiles",
) -> None:
    """Runs ``predictor`` on tiles and writes each tile's write region, in one pass.

    Args:
        predictor: any callable ``(N, 3, T, T)`` float RGB 0..255 -> ``(N, 1, T, T)``
            logits.
        read: reads a tile's read window (reflecting outside the image).
        tiles: the tiles to run (e.g. from :func:`.tiling.make_tiles`, possibly filtered).
        write: receives ``(tile, probabilities of tile.write)``, float32 in [0, 1], shape
            ``(wy1 - wy0, wx1 - wx0)``.
        batch_size: tiles per forward pass.
        device: where the predictor runs.
        autocast_dtype: ``torch.bfloat16`` / ``torch.float16`` for mixed precision,
            ``None`` for fp32.
        progress: show a progress bar (tiles done / total, rate and ETA).
        prefetch: read the next batch in a background thread during the forward pass.
        channels_last: feed the batch in channels-last memory format.
        desc: progress bar label.
    """
    dev = torch.device(device)
    batches = [tiles[i : i + batch_size] for i in range(0, len(tiles), batch_size)]

    def load(chunk: Sequence[Tile]) -> np.ndarray:
        return np.stack([read(t.read) for t in chunk])

    bar = tqdm(total=len(tiles), desc=desc, unit="tile", disable=not progress, smoothing=0.1)
    pool = ThreadPoolExecutor(max_workers=1) if prefetch and len(batches) > 1 else None
    try:
        pending: Future[np.ndarray] | None = None
        with torch.inference_mode():
            for i, chunk in enumerate(batches):
                batch = pending.result() if pending is not None else load(chunk)
                pending = (
                    pool.submit(load, batches[i + 1])
                    if pool is not None and i + 1 < len(batches)
                    else None
                )
                x = torch.from_numpy(batch).to(dev).permute(0, 3, 1, 2).float()
                x = x.contiguous(
                    memory_format=torch.channels_last if channels_last else torch.contiguous_format
                )
                with torch.autocast(
                    dev.type,
                    dtype=autocast_dtype or torch.float32,
                    enabled=autocast_dtype is not None,
                ):
                    logits = predictor(x)
                prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
                for t, p in zip(chunk, prob, strict=True):
                    write(t, p[t.inner])
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def predict_whole(
    predictor: Predictor,
    image: np.ndarray,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> np.ndarray:
    """Foreground probability from one forward pass over the whole image.

    The image is padded at the bottom and right to a multiple of 32 by reflection and the
    output cropped back (:func:`pseudoedgenet.models.trained.run_padded`), exactly as
    validation and testing do, so the result is the probability map the test metrics are
    computed from. Memory grows with the image: use it for images of a few
    megapixels, :func:`predict_tiles` beyond.

    Args:
        predictor: ``(1, 3, H', W')`` float RGB 0..255 -> ``(1, 1, H', W')`` logits
            (H', W': H, W rounded up to multiples of 32).
        image: ``(H, W, 3)`` uint8 RGB.
        device: where the predictor runs.
        autocast_dtype: mixed precision dtype or ``None`` for fp32.
        channels_last: feed the input in channels-last memory format.

    Returns:
        ``(H, W)`` float32 probabilities in [0, 1].
    """
    dev = torch.device(device)
    with torch.inference_mode():
        pixels = np.require(image, requirements=("C", "W"))  # a copy only when needed
        x = torch.from_numpy(pixels).to(dev).permute(2, 0, 1)[None].float()
        x = x.contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )
        with torch.autocast(
            dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            logits = run_padded(predictor, x)
        return torch.sigmoid(logits.float())[0, 0].cpu().numpy()


def predict_probability(
    predictor: Predictor,
    image: np.ndarray,
    tile: int = 512,
    margin: int = 64,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    out: np.ndarray | None = None,
    progress: bool = False,
    channels_last: bool = True,
) -> np.ndarray:
    """Foreground probability of every pixel, by tiles (see :mod:`.tiling`).

    Args:
        predictor: any callable ``(N, 3, T, T)`` float RGB 0..255 -> ``(N, 1, T, T)``
            logits (e.g. :class:`pseudoedgenet.models.trained.Segmenter`).
        image: ``(H, W, 3)`` uint8 RGB.
        tile: tile side (multiple of 32); margin: context per side.
        batch_size: tiles per forward pass.
        device: where the predictor runs.
        autocast_dtype: ``torch.bfloat16`` (CPU) / ``torch.float16`` (CUDA) for mixed
            precision, ``None`` for fp32.
        out: optional preallocated ``(H, W)`` float array (e.g. a ``numpy.memmap``) to
            stitch into.
        progress: show a progress bar.
        channels_last: feed tiles in channels-last memory format.

    Returns:
        ``(H, W)`` float32 probabilities in [0, 1] (``out`` if given).
    """
    h, w = image.shape[:2]
    result = out if out is not None else np.empty((h, w), dtype=np.float32)

    def write(t: Tile, p: np.ndarray) -> None:
        wy0, wy1, wx0, wx1 = t.write
        result[wy0:wy1, wx0:wx1] = p

    predict_tiles(
        predictor,
        lambda box: read_window(image, box),
        make_tiles((h, w), tile, margin),
        write,
        batch_size=batch_size,
        device=device,
        autocast_dtype=autocast_dtype,
        progress=progress,
        prefetch=False,
        channels_last=channels_last,
    )
    return result
