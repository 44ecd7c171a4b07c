"""Error types raised for bad user input.

Every error carries a one-line message that names the offending file (when there is one)
and the problem, so the CLI can print it without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class PseudoEdgeNetError(Exception):
    """Base class of the errors this package raises on purpose."""


class DataError(PseudoEdgeNetError, ValueError):
    """Bad input data: unreadable file, size mismatch, invalid points, ...

    Args:
        path: the file (or folder) at fault, or ``None``.
        problem: what is wrong with it, one line.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class ConfigError(PseudoEdgeNetError, ValueError):
    """An invalid configuration value or file."""
