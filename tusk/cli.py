"""The ``tusk`` command line: ``tusk train|eval|detect|data|info`` (subcommands register in
``COMMANDS``; each lives in its own module: :mod:`tusk.commands`, :mod:`tusk.data.cli`)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _triton_line(info: dict) -> str:
    if not info["triton_backend"]:
        return f"not available: {info['triton_error']}"
    places = []
    if "triton" in info["usable_cuda"]:
        places.append("usable on CUDA")
    if "triton" in info["usable_cpu"]:
        places.append("usable on CPU tensors (TRITON_INTERPRET=1: interpreted, slow)")
    if not places:
        places.append("not usable here (needs a CUDA GPU; TRITON_INTERPRET=1 runs it on CPU tensors, slowly)")
    return "importable, " + ", ".join(places)


def _info(args: argparse.Namespace) -> int:
    import tusk
    from tusk.ops import describe

    info = describe()
    lines = [
        f"tusk {tusk.__version__}",
        f"torch {info['torch']} (CUDA {info['torch_cuda'] or 'none'}), {info['threads']} CPU threads",
        f"triton {info['triton'] or 'not installed'}",
        f"GPU: {info['cuda_device'] or 'none visible'}",
        "backends:",
        "  reference  built, usable (plain PyTorch)",
        "  cpp        " + ("built, usable on CPU" if info["cpp"] else f"NOT BUILT: {info['cpp_error']}"),
        "  cuda       " + ("built, usable" if info["cuda"] else "not available (needs a CUDA build of tusk._C and a GPU)"),
        "  triton     " + _triton_line(info),
        f"auto on CPU -> {info['auto_cpu']}",
    ]
    print("\n".join(lines))
    return 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("info", help="versions and which backends are built and usable")
    parser.set_defaults(func=_info)


def _command_parsers() -> list[Callable[[argparse._SubParsersAction], None]]:
    from .commands import detect, evaluate, train
    from .data.cli import add_data_command

    return [train.add_parser, evaluate.add_parser, detect.add_parser, add_data_command]


#: Each entry adds one subcommand to the parser.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [*_command_parsers(), _add_info]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tusk", description="TUSK: task-agnostic unsupervised keypoints")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
