"""A user's own pipelines, loaded into `serve` and `worker` beside the built-in ones:
modules named by `--pipelines` / `GENWIRE_PIPELINES`, and the entry-point group
`genwire.pipelines` of installed packages (SPEC §1)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType

from genwire.pipelines.base import Pipeline, PipelineRegistry

ENTRY_POINT_GROUP = "genwire.pipelines"


class PipelineLoadError(Exception):
    """A named module or entry point could not be loaded, or holds no pipeline."""


def pipelines_in(target: object, origin: str) -> list[Pipeline]:
    """The pipelines a module defines at its top level, or a pipeline itself, or
    those of an iterable of pipelines."""
    if isinstance(target, Pipeline):
        return [target]
    if isinstance(target, ModuleType):
        found = [value for value in vars(target).values() if isinstance(value, Pipeline)]
    elif isinstance(target, Iterable):
        found = [value for value in target if isinstance(value, Pipeline)]
    else:
        found = []
    if not found:
        raise PipelineLoadError(f"{origin} defines no pipeline (declare one with @pipeline)")
    return found


def load_modules(names: Iterable[str]) -> list[Pipeline]:
    """Import each module (from the current folder too, as uvicorn does for apps)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    loaded: list[Pipeline] = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as error:
            raise PipelineLoadError(
                f"cannot import pipeline module {name!r}: {type(error).__name__}: {error}"
            ) from error
        loaded.extend(pipelines_in(module, f"module {name!r}"))
    return loaded


def load_entry_points() -> list[Pipeline]:
    loaded: list[Pipeline] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = point.load()
        except Exception as error:
            raise PipelineLoadError(
                f"cannot load entry point {point.name!r} ({point.value}): "
                f"{type(error).__name__}: {error}"
            ) from error
        loaded.extend(pipelines_in(target, f"entry point {point.name!r} ({point.value})"))
    return loaded


def registry_with(base: PipelineRegistry, modules: Iterable[str]) -> PipelineRegistry:
    """`base` plus the user's pipelines; a name taken twice is an error that says where."""
    for item in [*load_entry_points(), *load_modules(modules)]:
        if base.get(item.name) is item:
            continue  # the same object reached twice (a module and an entry point)
        try:
            base.register(item)
        except ValueError as error:
            raise PipelineLoadError(str(error)) from None
    return base
