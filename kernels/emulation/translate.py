"""Rewrite a preprocessed CUDA source of ``kernels/`` into C++ for the host emulator (``runtime.cpp``).

The input is the output of the C preprocessor run with ``include/`` (stand-ins for the CUDA
headers) first on the include path, so macros that assemble launches are expanded and comments
are gone. Only the three constructs plain C++ cannot express change; everything else, the kernel bodies
included, compiles as written:

- ``kernel<T><<<grid, block, shared, stream>>>(args);`` becomes
  ``::tusk_emu::launch(::tusk_emu::config(grid, block, shared, stream),
  [](auto... a) { kernel<T>(a...); }, args);`` (the generic lambda lets a kernel template deduce
  its arguments exactly as in the original call);
- ``__shared__ T name[N];`` becomes a reference to a per-block slot,
  ``extern __shared__ T name[];`` a pointer to the block's dynamic shared memory;
- ``__launch_bounds__(n)`` becomes a check at the top of the kernel body (the emulator fails the
  launch if the block is larger, as the GPU does).

A construct the rewrite does not understand raises ``TranslationError`` naming the line: the
emulator must never run something other than the kernel that ships.

Usage: ``python translate.py preprocessed.ii out.cpp``.
"""
from __future__ import annotations

import re
import sys

_SHARED = re.compile(r"__shared__\s+(?P<type>[\w:<>, ]+?)\s+(?P<name>\w+)\s*(?P<dims>(?:\[[^\]]+\]\s*)*);")
_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?P<type>[\w:<>, ]+?)\s+(?P<name>\w+)\s*\[\s*\]\s*;")


class TranslationError(ValueError):
    pass


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _matching(text: str, start: int, open_char: str, close_char: str, step: int) -> int:
    """Index of the bracket matching the one at ``start``, scanning by ``step`` (+1 or -1)."""
    depth = 0
    i = start
    while 0 <= i < len(text):
        if text[i] == open_char:
            depth += 1
        elif text[i] == close_char:
            depth -= 1
            if depth == 0:
                return i
        i += step
    raise TranslationError(f"unbalanced {open_char}{close_char} from line {_line_of(text, start)}")


def _kernel_start(text: str, end: int) -> int:
    """Start of the kernel expression (a name, optionally with template arguments) ending at ``end``."""
    i = end - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    if text[i] == ">":
        i = _matching(text, i, ">", "<", -1) - 1
    while i >= 0 and (text[i].isalnum() or text[i] in "_:"):
        i -= 1
    start = i + 1
    if start >= end or not (text[start].isalpha() or text[start] in "_:"):
        raise TranslationError(f"cannot find the kernel of the launch on line {_line_of(text, end)}")
    return start


def rewrite_launches(text: str) -> str:
    out = []
    position = 0
    while (open_at := text.find("<<<", position)) >= 0:
        kernel_at = _kernel_start(text, open_at)
        close_at = text.find(">>>", open_at)
        if close_at < 0:
            raise TranslationError(f"unterminated <<< on line {_line_of(text, open_at)}")
        config = text[open_at + 3:close_at].strip()
        paren = close_at + 3
        while paren < len(text) and text[paren].isspace():
            paren += 1
        if paren >= len(text) or text[paren] != "(":
            raise TranslationError(f"a launch without arguments on line {_line_of(text, open_at)}")
        args_end = _matching(text, paren, "(", ")", +1)
        kernel = text[kernel_at:open_at].strip()
        args = text[paren + 1:args_end].strip()
        call = (f"::tusk_emu::launch(::tusk_emu::config({config}), "
                f"[](auto... tusk_args) {{ {kernel}(tusk_args...); }}")
        call += f", {args})" if args else ")"
        out.append(text[position:kernel_at])
        out.append(call)
        position = args_end + 1
    out.append(text[position:])
    return "".join(out)


def rewrite_shared(text: str) -> str:
    text = _EXTERN_SHARED.sub(
        lambda m: f"{m['type']}* {m['name']} = ::tusk_emu::dynamic_shared_as<{m['type']}>();", text)
    counter = iter(range(1_000_000))

    def slot(m: re.Match) -> str:
        tag = f"tusk_shared_tag_{next(counter)}"
        dims = re.sub(r"\s+", "", m["dims"])
        # A function-local static is distinct per template instantiation: one slot per kernel type.
        return (f"static const char {tag} = 0; "
                f"auto& {m['name']} = ::tusk_emu::shared_var<{m['type']}{dims}>(&{tag});")

    return _SHARED.sub(slot, text)


def rewrite_launch_bounds(text: str) -> str:
    out = []
    position = 0
    while (at := text.find("__launch_bounds__", position)) >= 0:
        paren = text.find("(", at)
        close = _matching(text, paren, "(", ")", +1)
        bound = text[paren + 1:close].split(",")[0].strip()
        # The kernel's parameter list follows; its body is the next brace.
        body = text.find("{", close)
        if body < 0 or ";" in text[close:body]:
            raise TranslationError(f"__launch_bounds__ without a kernel body on line {_line_of(text, at)}")
        out.append(text[position:at])
        out.append(text[close + 1:body + 1])
        out.append(f" ::tusk_emu::check_launch_bounds({bound});")
        position = body + 1
    out.append(text[position:])
    return "".join(out)


def translate(text: str, name: str = "<source>") -> str:
    text = rewrite_launch_bounds(rewrite_shared(rewrite_launches(text)))
    for construct in ("<<<", "__shared__", "__launch_bounds__"):
        if (at := text.find(construct)) >= 0:
            raise TranslationError(f"{name}:{_line_of(text, at)}: {construct} left untranslated")
    return f"// Translated from {name} for the host emulator by kernels/emulation/translate.py.\n{text}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        text = translate(source.read(), argv[1])
    with open(argv[2], "w", encoding="utf-8") as target:
        target.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
