"""``tusk data ...`` (and ``python -m tusk.data ...``): fetch MNIST, prepare dataset caches.

- ``mnist [--dir DIR]``: download the four MNIST files (MD5-verified) into ``DIR``
  (default :func:`~tusk.data.mnist_digits.default_mnist_dir`). Without a network, copy the
  files there instead (see :mod:`tusk.data.mnist_digits`).
- ``prepare NAME --root ROOT``: build the HDF5 cache of ``clevr6`` / ``tetrominoes`` TFRecords
  for both splits (``--protocol``, ``--split-records/--split-train/--split-test`` as in a run
  config), check the published MNIST-Hard directory (``mnist_hard``: every listed image decoded,
  line counts compared) or that ``celeba`` / ``h36m`` files are complete, printing sizes.

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

    if args.name == "mnist_hard":
        return _prepare_mist(args.root)
    splits = {"celeba": ("train", "mafl_train", "test")}.get(args.name, ("train", "test"))
    options = {}
    if args.name in ("clevr6", "tetrominoes"):
        options = {"protocol": args.protocol, "split_records": args.split_records,
                   "split_train": args.split_train, "split_test": args.split_test}
    for split in splits:
        ds = build_dataset(args.name, split, root=args.root, **options)
        print(f"{args.name} {split}: {len(ds)} images")
    if options:
        print(f"split: {ds.split_rule.describe()}; cache: {ds.cache}")
    return 0


def _prepare_mist(root: str) -> int:
    """Check a published MNIST-Hard directory: listings agree, every image decodes."""
    from .mist import MIST_DOWNLOAD, MistMnistHard, is_mist_dir, split_files

    if not is_mist_dir(root):
        expected = ", ".join(p.name for p in split_files(root, "train").values())
        raise FileNotFoundError(2, f"not a MIST mnist_hard directory (expected {expected} and the test "
                                   f"split's files; {MIST_DOWNLOAD})", root)
    for split in ("train", "test"):
        ds = MistMnistHard(root, split)
        report = ds.verify()
        sizes = ", ".join(f"{h}x{w}" for h, w in report["stored_sizes"])
        print(f"mnist_hard {split}: {report['images']} images, {report['digits']} digits "
              f"({ds.num_digits} per image), stored {sizes}")
    return 0


def _reporting(body):
    """Report user errors (missing or damaged files, too few scenes) as one line, as the other
    subcommands do."""

    def run(args: argparse.Namespace) -> int:
        from ..commands.common import reporting_errors

        return reporting_errors(body)(args)

    return run


def add_data_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="download MNIST, prepare dataset caches")
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    mnist = data_sub.add_parser("mnist", help="download and verify the MNIST IDX files")
    mnist.add_argument("--dir", default=None, help="target directory (default: the tusk data cache)")
    mnist.set_defaults(func=_reporting(_mnist))
    prepare = data_sub.add_parser("prepare", help="build caches / check files of a published dataset")
    prepare.add_argument("name", choices=["mnist_hard", "clevr6", "tetrominoes", "celeba", "h36m"])
    prepare.add_argument("--root", required=True, help="directory holding the dataset files")
    prepare.add_argument("--protocol", choices=["official", "paper"], default="official",
                         help="split of the DeepMind records (default: official, the authors' code)")
    prepare.add_argument("--split-records", type=int, help="official protocol: records read (default 70000 "
                                                           "for CLEVR, 60000 for Tetrominoes)")
    prepare.add_argument("--split-train", type=int, help="paper protocol: train scenes")
    prepare.add_argument("--split-test", type=int, help="test scenes (default 10000)")
    prepare.set_defaults(func=_reporting(_prepare))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tusk.data")
    add_data_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
