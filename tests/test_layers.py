"""The package's layers import only downwards, and shared helpers exist once
(atomic file and folder writes in data.io)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pseudoedgenet.data.io import atomic_dir, atomic_path, write_text
from pseudoedgenet.errors import DataError

SRC = Path(__file__).resolve().parents[1] / "src" / "pseudoedgenet"

#: The layers below the engine and inference.
BOTTOM = (
    "data",
    "labels",
    "models",
    "losses",
    "metrics",
    "config",
    "errors",
    "hardware",
    "record",
)
#: What each layer must never import (``pseudoedgenet.<name>`` and below).
FORBIDDEN = {
    **{
        b: ("engine", "inference", "experiments", "cli", "export", "demo", "walkthrough")
        for b in BOTTOM
    },
    "inference": ("engine", "experiments", "cli", "demo", "walkthrough"),
    "engine": ("inference", "experiments", "cli", "demo", "walkthrough"),
    "export": ("engine", "experiments", "cli"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Every module a file imports, at any depth of the file (functions, TYPE_CHECKING);
    ``from pkg import name`` counts as ``pkg`` and ``pkg.name`` (which may be a module)."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the file's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _layer(module: str) -> str:
    """``pseudoedgenet.data.io`` -> ``data``; ``pseudoedgenet.export`` -> ``export``."""
    return module.split(".")[1] if module.count(".") else ""


def _violations(module: str, imported: set[str]) -> list[tuple[str, str]]:
    forbidden = FORBIDDEN.get(_layer(module), ())
    return [
        (module, name)
        for name in sorted(imported)
        if name.startswith("pseudoedgenet.") and _layer(name) in forbidden
    ]


def test_no_layer_imports_upwards() -> None:
    """No exceptions: the slide reader that ``prepare qupath`` uses lives in data.slide."""
    bad = [v for p in sorted(SRC.rglob("*.py")) for v in _violations(_module_name(p), _imports(p))]
    assert bad == []


def test_importing_the_bottom_layers_loads_no_upper_layer() -> None:
    """At run time too (transitive imports included): importing every module of the bottom
    layers, data.qupath and data.slide among them, loads no engine, inference, ... module."""
    modules = sorted(
        _module_name(p) for p in SRC.rglob("*.py") if _layer(_module_name(p)) in BOTTOM
    )
    assert {"pseudoedgenet.data.qupath", "pseudoedgenet.data.slide"} <= set(modules)
    upper = sorted({f"pseudoedgenet.{u}" for b in BOTTOM for u in FORBIDDEN[b]})
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"up = {upper!r}\n"
        "print(sorted(m for m in sys.modules if any((m + '.').startswith(u + '.') for u in up)))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"


def test_the_import_walk_finds_upward_imports_at_any_depth(tmp_path: Path) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import io\n"
        "if TYPE_CHECKING:\n"
        "    from ..inference import predict\n"
        "def f():\n"
        "    import pseudoedgenet.experiments.report\n"
    )
    found = _imports(fake, "pseudoedgenet.data.fake")
    assert {"pseudoedgenet.data.io", "pseudoedgenet.inference.predict"} <= found
    assert _violations("pseudoedgenet.data.fake", found) == [
        ("pseudoedgenet.data.fake", "pseudoedgenet.experiments.report"),
        ("pseudoedgenet.data.fake", "pseudoedgenet.inference"),
        ("pseudoedgenet.data.fake", "pseudoedgenet.inference.predict"),
    ]
    assert _violations("pseudoedgenet.inference.fake", found) == [  # inference: not experiments
        ("pseudoedgenet.inference.fake", "pseudoedgenet.experiments.report")
    ]
    assert _violations("pseudoedgenet.inference.x", {"pseudoedgenet.engine.train"}) != []
    # the real files: the trained model sits below, export and the engine use it
    assert {"pseudoedgenet.data.io", "pseudoedgenet.config"} <= _imports(
        SRC / "models" / "trained.py"
    )
    assert "pseudoedgenet.models.trained" in _imports(SRC / "export.py")
    assert "pseudoedgenet.models.trained" in _imports(SRC / "engine" / "train.py")


def test_inference_and_export_import_no_lightning() -> None:
    code = (
        "import pseudoedgenet.inference, pseudoedgenet.export, sys\n"
        "assert 'lightning' not in sys.modules"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def test_only_data_io_makes_temporary_files_and_renames() -> None:
    """One atomic-write helper: nothing else in the package calls tempfile, os.replace,
    os.rename or Path.rename/replace."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "data" / "io.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            module_call = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("tempfile", "os")
                and node.attr in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "replace", "rename")
            )
            if module_call or (isinstance(node, ast.Attribute) and node.attr == "rename"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, ast.Import | ast.ImportFrom) and any(
                a.name == "tempfile" for a in node.names
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


# ------------------------------------------------------------------ atomic folders


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_dir_creates_a_whole_folder_with_usual_permissions(tmp_path: Path) -> None:
    out = tmp_path / "a" / "out"
    with atomic_dir(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".out.tmp-")
        assert not out.exists()
        write_text(tmp / "x.txt", "x")
    assert (out / "x.txt").read_text() == "x"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert (out / "x.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()
    with atomic_path(tmp_path / "f.bin") as t:
        t.write_bytes(b"1")
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_atomic_dir_refuses_replaces_and_keeps_the_old_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(DataError, match="out: output folder exists"), atomic_dir(out):
        pass
    with pytest.raises(RuntimeError, match="boom"), atomic_dir(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old one is gone
    # created by someone else while the block ran: refused, nothing lost
    late = tmp_path / "late"
    with pytest.raises(DataError, match="late: output folder exists"), atomic_dir(late) as tmp:
        (tmp / "mine.txt").write_text("mine")
        late.mkdir()
        (late / "theirs.txt").write_text("theirs")
    assert [p.name for p in late.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late", "out"]
