"""``tusk train``: train a model from a packaged or custom config."""
from __future__ import annotations

import argparse
import os
import sys

from .common import UserError, parse_device, reporting_errors

DEFAULT_CONFIG = "quickstart"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train", help="train TUSK (default: a few CPU minutes on procedural Tetrominoes)",
        description="Train TUSK. Writes checkpoint.pt, metrics.json, PNG pictures and TensorBoard logs "
                    "into the run directory.",
    )
    parser.add_argument("--config", help=f"packaged config name or YAML path (default: {DEFAULT_CONFIG}; "
                                          "with --resume: the run's stored config)")
    parser.add_argument("--data-dir", help="directory holding the dataset files (overrides data.root)")
    parser.add_argument("--steps", type=int, help="total training steps (overrides train.steps)")
    parser.add_argument("--out", help="run directory (default: runs/<config name>)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's: auto in the paper configs, cpu in quickstart)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--check-ops", type=int, metavar="N",
                        help="every N steps, replay the step on the reference ops and fail on a mismatch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return reporting_errors(_run)(args)
    except KeyboardInterrupt:
        print("tusk: interrupted; continue with `tusk train --resume --out RUN_DIR` "
              "(from the last checkpoint)", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import json

    from ..config import load_config
    from ..training import Trainer
    from ..training.checkpoint import checkpoint_path

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.check_ops is not None and args.check_ops < 0:
        raise UserError(f"--check-ops must be >= 0, got {args.check_ops}")
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        if not os.path.isfile(checkpoint_path(args.out)):
            raise UserError(f"--resume: no checkpoint in {args.out}")
        from ..training import load_run

        config = load_run(args.out)[0]  # validates the checkpoint before anything else
        if args.config:
            print(f"tusk: note: resuming with the config stored in {args.out}; --config is ignored", file=sys.stderr)
    else:
        config = load_config(args.config or DEFAULT_CONFIG)
    if args.steps is not None:
        config.train.steps = args.steps
    if args.check_ops is not None:
        config.train.check_ops = args.check_ops
    config.train.device = parse_device(args.device, config.train.device)
    if args.data_dir:
        if not os.path.isdir(args.data_dir):
            raise UserError(f"--data-dir {args.data_dir} is not a directory")
        config.data.root = args.data_dir
    out = args.out or os.path.join("runs", config.name)
    if not args.resume and os.path.isfile(checkpoint_path(out)):
        raise UserError(f"{out} already holds a run; continue it with --resume or choose another --out")

    metrics = Trainer(config, out, resume=args.resume, progress=not args.quiet).run()
    print(f"run directory: {out}")
    print(json.dumps(metrics, indent=2, default=float))
    return 0
