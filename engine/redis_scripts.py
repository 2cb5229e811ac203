"""The engine's Redis scripts, kept as .lua files beside the modules that call them (package data).

A script may start from shared functions: `lua("recommend", "decr.lua", "apply.lua")` is the
text of both, in that order, as Redis receives it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def lua(package: str, *names: str) -> str:
    folder = files(f"engine.{package}") / "lua"
    return "".join((folder / name).read_text() for name in names)
