"""Where a run's data comes from, in words: published benchmark files or generated scenes.

A figure on generated scenes is not the paper's benchmark, so every run states its source
(``tusk train`` prints it, writes it into ``config.yaml`` as a comment and into
``metrics.json``; ``tusk eval`` into ``eval.json``).
"""
from __future__ import annotations

import os
from typing import Any


def data_source(name: str, root: str | os.PathLike | None = None, *, protocol: str | None = None,
                resize: str | None = None) -> dict[str, Any]:
    """``{"dataset", "kind", "benchmark", "root", "description"}`` for dataset ``name`` read
    from ``root`` (the arguments of :func:`tusk.data.build_dataset`).

    ``kind``: ``"published"`` (the benchmark's released files), ``"generated"`` (scenes made
    by this package) or ``"toy"``; ``benchmark``: whether figures on it compare to the paper's
    tables (published files read with the paper's protocol).
    """
    from .mist import is_mist_dir
    from .mnist_digits import default_mnist_dir

    path = None if root is None else os.path.abspath(os.fspath(root))
    resize_note = f", resize '{resize}'" if resize else ""
    if name == "mnist_hard":
        if is_mist_dir(root):
            return _source(name, "published", True, path,
                           f"published MNIST-Hard files (MIST release) in {path}{resize_note}")
        digits = path or str(default_mnist_dir())
        form = "an npz of digits" if os.path.isfile(digits) else "MNIST IDX files"
        return _source(name, "generated", False, path,
                       f"generated MNIST-Hard scenes composed from the digits of {form} at {digits} "
                       "(not the published benchmark images)")
    if name == "tetrominoes":
        if root is None:
            return _source(name, "generated", False, None,
                           f"generated Tetrominoes scenes (procedural, not the published records){resize_note}")
        return _source(name, "published", True, path, f"published DeepMind Tetrominoes records in {path}, "
                       f"{protocol or 'official'} split protocol{resize_note}")
    if name == "clevr6":
        return _source(name, "published", True, path, f"published DeepMind CLEVR (with masks) records in {path}, "
                       f"{protocol or 'official'} split protocol{resize_note}")
    if name in ("celeba", "h36m"):
        return _source(name, "published", True, path, f"published {name} files in {path}")
    return _source(name, "toy", False, path, f"built-in toy dataset {name!r} (generated)")


def _source(name, kind, benchmark, root, description) -> dict[str, Any]:
    return {"dataset": name, "kind": kind, "benchmark": benchmark, "root": root, "description": description}


def config_source(data_config) -> dict[str, Any]:
    """:func:`data_source` of a run's ``DataConfig``."""
    return data_source(data_config.dataset, data_config.root, protocol=getattr(data_config, "protocol", None),
                       resize=getattr(data_config, "resize", None))


def source_line(source: dict[str, Any]) -> str:
    """One line for logs and the ``config.yaml`` header."""
    note = "" if source["benchmark"] else "; figures on it are not the paper's benchmark"
    return f"data source: {source['description']}{note}"
