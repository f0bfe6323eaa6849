"""argparse types shared by the project's command lines.

Each checks one value at parse time, so a bad value stops a run before any model or data is loaded.
They raise :class:`argparse.ArgumentTypeError`, and argparse puts the option's name in front:
``python -m lstm_svd: error: argument --epochs: must be an integer >= 1, got 0`` (exit code 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Iterable

SEED_MAX = 2 ** 32 - 1  # numpy's and TensorFlow's seeds are 32-bit


def _bounds(low: int, high: int | None) -> str:
    return f">= {low}" if high is None else f"in {low}..{high}"


def _because(reason: str) -> str:
    return f" ({reason})" if reason else ""


def int_in_range(low: int, high: int | None = None, reason: str = "") -> Callable[[str], int]:
    """Type: an integer in ``low..high`` (no upper bound when ``high`` is None); ``reason`` says why."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {_bounds(low, high)}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {_bounds(low, high)}{_because(reason)}, "
                                             f"got {value}")
        return value

    parse.__name__ = f"integer {_bounds(low, high)}"
    return parse


positive_int = int_in_range(1)
non_negative_int = int_in_range(0)
seed_int = int_in_range(0, SEED_MAX, "seeds are 32-bit")


def _items(text: str) -> list:
    return [item.strip() for item in text.split(",") if item.strip()]


def _distinct(items: list, text: str) -> list:
    if not items:
        raise argparse.ArgumentTypeError(f"needs at least one value, got {text!r}")
    repeated = sorted({item for item in items if items.count(item) > 1}, key=str)
    if repeated:
        raise argparse.ArgumentTypeError(f"repeats {', '.join(map(str, repeated))} in {text!r}; give each once")
    return items


def int_list(low: int, high: int, example: str = "1,2,3") -> Callable[[str], tuple]:
    """Type: comma-separated distinct integers in ``low..high`` (at least one), as a tuple."""

    def parse(text: str) -> tuple:
        try:
            numbers = [int(item) for item in _items(text)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes comma-separated integers in {low}..{high} such as {example}, "
                                             f"got {text!r}") from None
        outside = [n for n in numbers if not low <= n <= high]
        if outside:
            raise argparse.ArgumentTypeError(f"takes integers in {low}..{high}, got {', '.join(map(str, outside))}")
        return tuple(_distinct(numbers, text))

    parse.__name__ = f"integers in {low}..{high}"
    return parse


def name_list(choices: Iterable[str]) -> Callable[[str], tuple]:
    """Type: comma-separated distinct names out of ``choices`` (at least one), as a tuple."""
    choices = tuple(choices)

    def parse(text: str) -> tuple:
        names = _items(text)
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}; choose from "
                                             f"{', '.join(choices)}")
        return tuple(_distinct(names, text))

    parse.__name__ = "names"
    return parse


def existing_file(text: str) -> Path:
    """Type: the path of a file that exists (not a folder)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; expected a file")
    return path


def existing_folder(text: str) -> Path:
    """Type: the path of a folder that exists."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder" if path.exists()
                                         else f"{path} does not exist")
    return path


def output_folder(text: str) -> Path:
    """Type: a folder to write into: one that exists, or one that can be created (no file in the way)."""
    path = Path(text).expanduser()
    in_the_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way == path:
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    if in_the_way is not None:
        raise argparse.ArgumentTypeError(f"{path} cannot be created: {in_the_way} is a file")
    return path
