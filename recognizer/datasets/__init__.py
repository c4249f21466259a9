"""Dataset loaders. Each registers a builder that returns a `DatasetBundle`.

`build_dataset("nw-ucla", root="../shared/data/nw-ucla/all_sqe")` and the CLI's
`--dataset/--data-root` go through the one registry below; a new dataset is one module with a
`@register("name")` function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from recognizer.datasets.base import ClipConfig, DatasetBundle, SkeletonDataset, Split

__all__ = ["ClipConfig", "DatasetBundle", "SkeletonDataset", "Split", "build_dataset", "register"]

BUILDERS: dict[str, Callable[..., DatasetBundle]] = {}
# dataset name -> module that registers it (imported on first use, keeping start-up light)
MODULES = {
    "synthetic": "recognizer.datasets.synthetic",
    "nw-ucla": "recognizer.datasets.nw_ucla",
    "ntu60-xsub": "recognizer.datasets.ntu",
    "ntu60-xview": "recognizer.datasets.ntu",
    "ntu120-xsub": "recognizer.datasets.ntu",
    "ntu120-xset": "recognizer.datasets.ntu",
    "native": "recognizer.datasets.native",
}


class DatasetError(ValueError):
    """A dataset path or file is missing or malformed; the message names it."""


def register(name: str) -> Callable[[Callable[..., DatasetBundle]], Callable[..., DatasetBundle]]:
    def wrap(fn: Callable[..., DatasetBundle]) -> Callable[..., DatasetBundle]:
        BUILDERS[name] = fn
        return fn

    return wrap


def build_dataset(name: str, root: str | None = None, **options) -> DatasetBundle:
    if name not in BUILDERS and name in MODULES:
        importlib.import_module(MODULES[name])
    if name not in BUILDERS:
        known = ", ".join(sorted(set(BUILDERS) | set(MODULES)))
        raise DatasetError(f"unknown dataset '{name}' (known: {known})")
    return BUILDERS[name](root=root, **options)
