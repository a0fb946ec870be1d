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
    parser.add_argument("--data-dir", help="directory holding the dataset files, or for mnist_hard an npz of "
                                           "digits (overrides data.root)")
    parser.add_argument("--steps", type=int, help="total training steps (overrides train.steps)")
    parser.add_argument("--out", help="run directory (default: runs/<config name>)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's, usually cpu)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--check-ops", type=int, metavar="N",
                        help="every N steps, replay the step on the reference ops and fail on a mismatch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value: dotted key, YAML value (--set train.batch_size=16 "
                             "--set model.width=16); repeatable, applied in order before validation and "
                             "before the flags above; with --resume only the keys of "
                             "tusk.config_overrides.RESUMABLE_KEYS")
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
    from ..training.run_lock import hold_run_lock

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.check_ops is not None and args.check_ops < 0:
        raise UserError(f"--check-ops must be >= 0, got {args.check_ops}")
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        if not os.path.isdir(args.out):
            raise UserError(f"--resume: no checkpoint in {args.out}")
        out = args.out
    else:
        config = _apply_flags(load_config(args.config or DEFAULT_CONFIG, overrides=args.overrides), args)
        out = args.out or os.path.join("runs", config.name)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is not a directory")

    # The lock is held from before the run is read until training ends: a second trainer on this
    # directory (a new run or --resume) is refused instead of mixing the two runs.
    with hold_run_lock(out):
        if args.resume:
            if not os.path.isfile(checkpoint_path(out)):
                raise UserError(f"--resume: no checkpoint in {out}")
            config = _apply_flags(_resumed_config(out, args), args)
        elif os.path.isfile(checkpoint_path(out)):
            raise UserError(f"{out} already holds a run; continue it with --resume or choose another --out")
        metrics = Trainer(config, out, resume=args.resume, progress=not args.quiet).run()
    print(f"run directory: {out}")
    print(json.dumps(metrics, indent=2, default=float))
    return 0


def _resumed_config(out: str, args: argparse.Namespace):
    """The stored config of the run in ``out`` with the resumable ``--set`` overrides applied."""
    from ..config_overrides import override_config
    from ..training import load_run

    config = load_run(out)[0]  # validates the checkpoint before anything else
    if args.config:
        print(f"tusk: note: resuming with the config stored in {out}; --config is ignored", file=sys.stderr)
    return override_config(config, args.overrides, resuming=True) if args.overrides else config


def _apply_flags(config, args: argparse.Namespace):
    """``--steps``, ``--check-ops``, ``--device`` and ``--data-dir`` (after any ``--set``)."""
    from .data_dir import check_data_dir

    if args.steps is not None:
        config.train.steps = args.steps
    if args.check_ops is not None:
        config.train.check_ops = args.check_ops
    config.train.device = parse_device(args.device, config.train.device)
    if args.data_dir:
        config.data.root = check_data_dir(args.data_dir, config.data.dataset)
    return config
