"""``tusk eval RUN_DIR``: score a trained run on its dataset's test split."""
from __future__ import annotations

import argparse
import json
import os

from .common import UserError, parse_device, reporting_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate a trained run on the test split",
                            description="Run a trained model on the test split, print the metrics and "
                                        "write them to RUN_DIR/eval.json (or --out); the task metrics' "
                                        "figures go to RUN_DIR/eval/.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `tusk train`")
    parser.add_argument("--data-dir", help="directory holding the dataset files, or for mnist_hard an npz of "
                                           "digits (overrides the stored one)")
    parser.add_argument("--images", type=int, help="number of test images (default: the whole test split)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--out", help="metrics JSON file (default: RUN_DIR/eval.json)")
    parser.set_defaults(func=run)


@reporting_errors
def run(args: argparse.Namespace) -> int:
    import torch

    from .. import ops
    from ..data.registry import REGRESSOR_SPLIT
    from ..training import load_run
    from ..training.data import build_dataset
    from ..training.evaluation import evaluate_run

    if not os.path.isdir(args.run_dir):
        raise UserError(f"{args.run_dir} is not a run directory")
    if args.images is not None and args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    device = torch.device(parse_device(args.device))
    config, model, _ = load_run(args.run_dir, device)
    if args.data_dir:
        from .data_dir import check_data_dir

        config.data.root = check_data_dir(args.data_dir, config.data.dataset)
    test_set = build_dataset(config.data, "test")
    count = len(test_set) if args.images is None else min(args.images, len(test_set))
    with ops.use_backend(config.train.backend):
        metrics = {"run": os.path.abspath(args.run_dir), "dataset": config.data.dataset, "split": "test"}
        # The landmark tasks fit their linear regressor on a training split (MAFL train for CelebA).
        regressor_split = REGRESSOR_SPLIT.get(config.data.dataset)
        train_set = build_dataset(config.data, regressor_split) if regressor_split else None
        metrics.update(evaluate_run(model, config.data.dataset, test_set, count, device, train_set=train_set,
                                    out_dir=os.path.join(args.run_dir, "eval")))
    out = args.out or os.path.join(args.run_dir, "eval.json")
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=2, default=_plain)
    print(json.dumps(metrics, indent=2, default=_plain))
    print(f"metrics written to {out}")
    return 0


def _plain(value):
    """JSON fallback for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return float(value)
