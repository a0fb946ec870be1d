"""Turn pytest-benchmark JSON into the RESULTS.md tables.

Usage::

    pytest benchmarks/ --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json --command "pytest benchmarks/ ..." > benchmarks/RESULTS.md

Every benchmark carries ``extra_info`` (op, config, pass_, impl, optional peak_mb, the targets
of :data:`TARGET_KEYS`, and for throughput benchmarks ``images_per_s``). ``--notes FILE``
appends a hand-written section (explanations of missed targets) after the tables; ``--section
TITLE`` renders everything one heading level down under ``## TITLE``, to append the tables of a
separate run (e.g. ``bm_kornia.py``) to RESULTS.md.
Ratios compare implementations measured in the same run: ``x tusk`` is how many times slower
than tusk's compiled backend an implementation is (so > 1 means tusk is faster).
"""
from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict

TUSK_IMPLS = ("tusk-cpp", "tusk-cuda", "tusk-triton", "tusk")
#: extra_info keys that put a row into the Targets table. Absolute: target_ms, target_mb.
#: Relative to the row of implementation ``baseline`` in the same group: target_speedup
#: (baseline median / this median, at least), target_memory_fraction (peak / baseline peak, at most).
TARGET_KEYS = ("target_ms", "target_mb", "target_speedup", "target_memory_fraction")


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _tusk_row(rows: list[dict]) -> dict | None:
    for impl in TUSK_IMPLS:
        for row in rows:
            if row["extra_info"].get("impl") == impl:
                return row
    return None


def _machine(data: dict) -> str:
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    brand = cpu.get("brand_raw") or cpu.get("brand") or platform.processor() or "unknown CPU"
    threads = next((b["extra_info"].get("threads") for b in data["benchmarks"] if "threads" in b["extra_info"]), None)
    parts = [brand, f"{cpu.get('count', '?')} logical cores"]
    if threads:
        parts.append(f"torch threads = {threads}")
    parts.append(f"Python {info.get('python_version', '?')}")
    return ", ".join(parts)


def render(data: dict, command: str) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        extra = bench["extra_info"]
        if "op" not in extra:
            continue
        groups[(extra["op"], extra["config"], extra["pass_"])].append(bench)

    out = ["# Benchmark results", ""]
    out += [f"- Command: `{command}`", f"- Machine: {_machine(data)}",
            f"- Date: {data.get('datetime', '?')[:19]}", ""]
    out += ["Times are medians in milliseconds. `x tusk` = implementation median / tusk median "
            "(> 1: tusk is faster), measured in the same run.", ""]

    targets = []
    for (op, config, pass_), rows in sorted(groups.items()):
        for row in rows:
            extra = row["extra_info"]
            if any(extra.get(key) is not None for key in TARGET_KEYS):
                targets.append((op, config, pass_, row, rows))

    if targets:
        out += ["## Targets", "", "| op | config | pass | target | measured | met | vs official | vs peers |",
                "|---|---|---|---|---|---|---|---|"]
        for op, config, pass_, row, rows in targets:
            extra = row["extra_info"]
            median = row["stats"]["median"]
            checks, measured = [], []
            if extra.get("target_ms") is not None:
                checks.append(median * 1e3 <= extra["target_ms"])
                measured.append(f"{_fmt_ms(median)} ms")
            if extra.get("target_mb") is not None and extra.get("peak_mb") is not None:
                checks.append(extra["peak_mb"] <= extra["target_mb"])
                measured.append(f"{extra['peak_mb']:.1f} MB")
            if extra.get("images_per_s") is not None:
                measured.append(f"{extra['images_per_s']:.0f} images/s")
            baseline = next((r for r in rows if r["extra_info"]["impl"] == extra.get("baseline")), None)
            if extra.get("target_speedup") is not None and baseline is not None:
                speedup = baseline["stats"]["median"] / median
                checks.append(speedup >= extra["target_speedup"])
                measured.append(f"{speedup:.2f}x faster")
            if extra.get("target_memory_fraction") is not None and baseline is not None:
                fraction = extra["peak_mb"] / baseline["extra_info"]["peak_mb"]
                checks.append(fraction <= extra["target_memory_fraction"])
                measured.append(f"{fraction:.2f}x the memory ({extra['peak_mb']:.0f} MB)")
            target = ", ".join(
                t for t in (
                    f"≤ {extra['target_ms']} ms" if extra.get("target_ms") is not None else "",
                    f"≤ {extra['target_mb']} MB" if extra.get("target_mb") is not None else "",
                    f"≥ {extra['target_speedup']}x faster than {extra.get('baseline')}"
                    if extra.get("target_speedup") is not None else "",
                    f"≤ {extra['target_memory_fraction']}x its peak memory"
                    if extra.get("target_memory_fraction") is not None else "",
                ) if t
            )
            others = {r["extra_info"]["impl"]: r["stats"]["median"] / median for r in rows if r is not row}
            official = ", ".join(f"{k} {v:.1f}x" for k, v in others.items() if k.startswith("official"))
            peers = ", ".join(f"{k} {v:.1f}x" for k, v in others.items() if not k.startswith("official"))
            met = "yes" if checks and all(checks) else "**no**"
            out.append(f"| {op} ({extra['impl']}) | {config} | {pass_} | {target} | {', '.join(measured)} | {met} | {official or '-'} | {peers or '-'} |")
        out.append("")

    out += ["## All measurements", ""]
    current_op = None
    for (op, config, pass_), rows in sorted(groups.items()):
        if op != current_op:
            out += [f"### {op}", "", "| config | pass | implementation | median ms | IQR ms | x tusk | peak MB |",
                    "|---|---|---|---|---|---|---|"]
            current_op = op
        tusk = _tusk_row(rows)
        for row in sorted(rows, key=lambda r: r["stats"]["median"]):
            extra = row["extra_info"]
            ratio = f"{row['stats']['median'] / tusk['stats']['median']:.2f}" if tusk else "-"
            peak = f"{extra['peak_mb']:.1f}" if extra.get("peak_mb") is not None else "-"
            out.append(f"| {config} | {pass_} | {extra['impl']} | {_fmt_ms(row['stats']['median'])} | "
                       f"{_fmt_ms(row['stats']['iqr'])} | {ratio} | {peak} |")
        next_ops = [k[0] for k in sorted(groups) if k > (op, config, pass_)]
        if not next_ops or next_ops[0] != op:
            out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="pytest-benchmark --benchmark-json files (merged)")
    parser.add_argument("--command", default="pytest benchmarks/ --benchmark-only --benchmark-json=bench.json")
    parser.add_argument("--notes", help="a Markdown file appended after the tables")
    parser.add_argument("--section", help="render as a section with this title (headings one level down), to "
                                          "append a separate run's tables to RESULTS.md")
    args = parser.parse_args()
    merged: dict = {"benchmarks": []}
    for path in args.json:
        with open(path) as handle:
            data = json.load(handle)
        merged.setdefault("machine_info", data.get("machine_info", {}))
        merged.setdefault("datetime", data.get("datetime", ""))
        merged["benchmarks"] += data["benchmarks"]
    text = render(merged, args.command)
    if args.notes:
        with open(args.notes) as handle:
            text += "\n" + handle.read()
    if args.section:
        lines = ["#" + line if line.startswith("#") else line for line in text.splitlines()]
        lines[0] = f"## {args.section}"
        text = "\n".join(lines) + "\n"
    print(text, end="")


if __name__ == "__main__":
    main()
