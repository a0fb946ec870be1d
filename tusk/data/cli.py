"""``tusk data ...`` (and ``python -m tusk.data ...``): fetch MNIST, prepare dataset caches.

- ``mnist [--dir DIR]``: download the four MNIST files (MD5-verified) into ``DIR``
  (default :func:`~tusk.data.mnist_digits.default_mnist_dir`). Without a network, copy the
  files there instead (see :mod:`tusk.data.mnist_digits`).
- ``prepare NAME --root ROOT``: build the HDF5 cache of ``clevr6`` / ``tetrominoes`` TFRecords
  for both splits, or check that ``celeba`` / ``h36m`` files are complete, printing sizes.

:func:`add_data_command` has the signature of ``tusk.cli.COMMANDS`` entries.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _mnist(args: argparse.Namespace) -> int:
    from .mnist_digits import download_mnist, load_digits

    directory = download_mnist(args.dir)
    sizes = {split: len(load_digits(directory, split)) for split in ("train", "test")}
    print(f"MNIST in {directory}: {sizes['train']} train and {sizes['test']} test digits")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from .registry import build_dataset

    splits = {"celeba": ("train", "mafl_train", "test")}.get(args.name, ("train", "test"))
    for split in splits:
        ds = build_dataset(args.name, split, root=args.root)
        print(f"{args.name} {split}: {len(ds)} images")
    return 0


def add_data_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="download MNIST, prepare dataset caches")
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    mnist = data_sub.add_parser("mnist", help="download and verify the MNIST IDX files")
    mnist.add_argument("--dir", default=None, help="target directory (default: the tusk data cache)")
    mnist.set_defaults(func=_mnist)
    prepare = data_sub.add_parser("prepare", help="build caches / check files of a published dataset")
    prepare.add_argument("name", choices=["clevr6", "tetrominoes", "celeba", "h36m"])
    prepare.add_argument("--root", required=True, help="directory holding the dataset files")
    prepare.set_defaults(func=_prepare)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tusk.data")
    add_data_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
