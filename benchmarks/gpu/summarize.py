"""Summarise a ``bm_gpu.py --benchmark-json`` file: times, speed-ups, bandwidth, targets, auto order.

    python benchmarks/gpu/summarize.py gpu.json [more.json ...] [--markdown]

Prints, per (op, config, pass), the device time of every implementation (CUDA events, per call),
the speed-up of each tusk kernel over the eager reference and over ``torch.compile`` of it, and
the kernel's achieved bandwidth as a fraction of the measured ``copy_`` bandwidth. Then checks
the targets of benchmarks/gpu/README.md on the large config and prints the
``AUTO_CUDA_PREFERENCE`` that makes ``backend="auto"`` pick the faster of CUDA and Triton per op
(geometric mean of the forward+backward time ratio over all configs).
Exit status 1 if a target is missed (0 on a CPU-only file: no targets apply).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict

SPEEDUP_TARGET = 10.0      # x the eager reference, large config, both passes
BANDWIDTH_TARGET = 0.5     # fraction of copy_ bandwidth, large config
MEMORY_BOUND = {("splat_gaussians", "fwd"), ("sample_descriptors", "fwd+bwd"),
                ("alpha_composite", "fwd"), ("alpha_composite", "fwd+bwd")}
KERNELS = ("cuda", "triton", "cpp")


def load(paths: list[str]) -> dict:
    """{(op, config, pass): {impl: extra_info}} from one or more JSON files (later files win)."""
    rows: dict = defaultdict(dict)
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for bench in data["benchmarks"]:
            info = bench["extra_info"]
            info.setdefault("device_ms", bench["stats"]["mean"] * 1e3)
            rows[(info["op"], info["config"], info["pass_"])][info["impl"]] = info
    return rows


def table(rows: dict, markdown: bool) -> list[str]:
    impls = sorted({i for r in rows.values() for i in r}, key=lambda i: ("cuda", "triton", "cpp", "reference", "compile").index(i))
    head = ["op", "config", "pass"] + [f"{i} ms" for i in impls]
    head += [f"{k} vs ref" for k in KERNELS if k in impls] + [f"{k} vs compile" for k in KERNELS if k in impls and "compile" in impls]
    head += [f"{k} %copy" for k in KERNELS if k in impls]
    lines = [head]
    for (op, cfg, pass_), r in sorted(rows.items()):
        line = [op, cfg, pass_] + [f"{r[i]['device_ms']:.3f}" if i in r else "-" for i in impls]
        for base in ("reference", "compile"):
            if base == "compile" and "compile" not in impls:
                continue
            for k in KERNELS:
                if k in impls:
                    line.append(f"{r[base]['device_ms'] / r[k]['device_ms']:.1f}x" if k in r and base in r else "-")
        for k in KERNELS:
            if k in impls:
                line.append(f"{100 * r[k]['fraction_of_copy']:.0f}%" if k in r else "-")
        lines.append(line)
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
        return out + ["| " + " | ".join(line) + " |" for line in lines[1:]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines]


def check_targets(rows: dict) -> list[str]:
    """Target misses on the large config, for the faster of the CUDA and Triton kernels."""
    misses = []
    for (op, cfg, pass_), r in sorted(rows.items()):
        if cfg != "large":
            continue
        kernels = [r[k] for k in ("cuda", "triton") if k in r]
        if not kernels:
            continue
        best = min(kernels, key=lambda info: info["device_ms"])
        if "reference" in r:
            speedup = r["reference"]["device_ms"] / best["device_ms"]
            if speedup < SPEEDUP_TARGET:
                misses.append(f"{op} {pass_}: {best['impl']} is {speedup:.1f}x the reference (target {SPEEDUP_TARGET:.0f}x)")
        if (op, pass_) in MEMORY_BOUND and best["fraction_of_copy"] < BANDWIDTH_TARGET:
            misses.append(f"{op} {pass_}: {best['impl']} reaches {100 * best['fraction_of_copy']:.0f}% of copy "
                          f"bandwidth (target {100 * BANDWIDTH_TARGET:.0f}%)")
    return misses


def auto_preference(rows: dict) -> dict[str, tuple[str, str]]:
    """Per op, ("cuda", "triton") or ("triton", "cuda") by the geometric mean fwd+bwd time ratio."""
    logs: dict = defaultdict(list)
    for (op, _cfg, pass_), r in rows.items():
        if pass_ == "fwd+bwd" and "cuda" in r and "triton" in r:
            logs[op].append(math.log(r["cuda"]["device_ms"] / r["triton"]["device_ms"]))
    return {op: (("cuda", "triton") if sum(v) / len(v) <= 0 else ("triton", "cuda")) for op, v in sorted(logs.items())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    rows = load(args.json)
    if not rows:
        print("no benchmarks in file")
        return 1
    first = next(iter(next(iter(rows.values())).values()))
    print(f"device: {first['device']}, torch {first['torch']}, copy_ bandwidth {first['copy_gbps']:.0f} GB/s\n")
    print("\n".join(table(rows, args.markdown)))
    misses = check_targets(rows)
    print("\ntargets on 'large' (>= {:.0f}x reference; memory-bound >= {:.0f}% of copy):".format(
        SPEEDUP_TARGET, 100 * BANDWIDTH_TARGET))
    has_large = any(cfg == "large" and ({"cuda", "triton"} & set(r)) for (_, cfg, _), r in rows.items())
    print("  (no GPU rows for 'large' in this file)" if not has_large else "\n".join(f"  MISS {m}" for m in misses) or "  all met")
    preference = auto_preference(rows)
    if preference:
        print("\nAUTO_CUDA_PREFERENCE = {")
        print("\n".join(f'    "{op}": {order!r},' for op, order in preference.items()))
        print("}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
