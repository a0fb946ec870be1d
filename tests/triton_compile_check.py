"""Compile every Triton kernel launch the tusk ops make, for NVIDIA GPUs, without a GPU.

The Triton interpreter (what the CPU tests use) is more permissive than the compiler, so a
kernel can pass every CPU test and still fail to compile. This script runs each op (forward
and backward, the dtypes given, shapes with 1-sized and odd dimensions) on CPU tensors with
the interpreter OFF and the kernel launch replaced by ``triton.compile`` of the exact
specialisation the launch would build (argument dtypes, ``1``-valued ints as constants,
constexprs, ``num_warps``), down to a cubin for each target architecture. Nothing is
computed (tensors passed to kernels are zeroed); only compilation is checked.

Usage: ``python tests/triton_compile_check.py [--arch 80 90] [--dtype float32 float64 ...]``
(exit status 1 if any kernel fails to compile). ``tests/test_triton_compile.py`` runs it.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import traceback

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("run without TRITON_INTERPRET: this compiles the kernels")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

POINTER_TYPES = {
    torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64",
    torch.int64: "*i64", torch.int32: "*i32", torch.uint8: "*u8", torch.bool: "*i1",
}


def _signature(kernel, args, kwargs):
    names = list(inspect.signature(kernel.fn).parameters)
    bound = dict(zip(names, args), **{k: v for k, v in kwargs.items() if k in names})
    signature, constants = {}, {}
    for param, name in zip(kernel.params, names):
        value = bound[name]
        if param.is_constexpr:
            signature[name], constants[name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name] = POINTER_TYPES[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            if value == 1:  # the launcher specialises ints equal to 1 into constants
                signature[name], constants[name] = "constexpr", 1
            else:
                signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
        elif isinstance(value, float):
            signature[name] = "fp32"
        elif value is None:
            signature[name], constants[name] = "constexpr", None
        else:
            raise TypeError(f"{kernel.fn.__name__}: cannot type argument {name}={value!r}")
    return signature, constants


class Recorder:
    """Stands in for ``_common.launch``: compiles instead of launching, once per specialisation."""

    def __init__(self, archs):
        self.archs, self.seen, self.failures, self.compiled = archs, set(), [], 0

    def __call__(self, kernel, grid, *args, **kwargs):
        for arg in args:  # nothing runs: give outputs (indices the op reads next) valid values
            if isinstance(arg, torch.Tensor):
                arg.zero_()
        if any(int(g) == 0 for g in grid):
            return
        options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
        signature, constants = _signature(kernel, args, kwargs)
        key = (kernel.fn.__name__, tuple(sorted(signature.items())),
               tuple(sorted((k, repr(v)) for k, v in constants.items())), tuple(sorted(options.items())))
        if key in self.seen:
            return
        self.seen.add(key)
        for arch in self.archs:
            try:
                triton.compile(ASTSource(kernel, signature, constexprs=constants),
                               target=GPUTarget("cuda", arch, 32), options=options)
                self.compiled += 1
            except Exception:  # report every failure, keep going
                self.failures.append(f"{kernel.fn.__name__} sm_{arch} {constants}\n{traceback.format_exc(limit=3)}")


QUICK = False  # --quick: skip the largest sort network (the slowest compile)


def _cases(dtype):
    """``(name, callable)`` exercising every kernel path of every op for ``dtype``."""
    import tusk.ops.triton  # noqa: F401  (registers torch.ops.tusk_triton)

    ops = torch.ops.tusk_triton
    g = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return (torch.rand(*shape, generator=g) * scale).to(dtype)

    cases = []
    for b, c, h, w, k in ((2, 5, 7, 9, 11), (1, 1, 1, 1, 1)):
        features, xy = rand(b, c, h, w), rand(b, k, 2, scale=float(max(h, w)))
        for padding in ("zeros", "border"):
            cases.append((f"sample_descriptors {padding} {b}x{c}x{h}x{w}", lambda f=features, p=xy, pad=padding: (
                ops.sample_descriptors(f, p, pad),
                ops.sample_descriptors_backward(rand(f.shape[0], p.shape[1], f.shape[1]), f, p, pad, [True, True]))))
    for b, k, c, h, w, radius in ((2, 6, 3, 20, 37, 1), (1, 1, 1, 1, 1, 3), (1, 3, 2, 9, 9, 20)):
        xy, desc, weights = rand(b, k, 2, scale=float(w)), rand(b, k, c), rand(b, k)
        for reduce in ("sum", "none"):
            for normalize, wts in ((True, weights), (False, None)):
                shape = (b, c, h, w) if reduce == "sum" else (b, k, c, h, w)
                cases.append((f"splat_gaussians {reduce} r={radius}", lambda x=xy, d=desc, wt=wts, n=normalize, r=reduce,
                              rad=radius, hh=h, ww=w, s=shape: (
                    ops.splat_gaussians(x, d, wt, hh, ww, 0.5, rad, n, r),
                    ops.splat_gaussians_backward(rand(*s), x, d, wt, hh, ww, 0.5, rad, n, r, [True, True, True]))))
    for b, k, c, h, w in ((2, 3, 3, 5, 6), (1, 1, 1, 1, 1), (1, 2, 11, 3, 7)):
        rgb, logits = rand(b, k, c, h, w), rand(b, k, 1, h, w)
        cases.append((f"alpha_composite {b}x{k}x{c}", lambda r=rgb, l=logits: (
            ops.alpha_composite(r, l),
            ops.alpha_composite_backward(rand(*r.shape[:1], *r.shape[2:]), rand(*l.shape), r, l, [True, True]),
            ops.alpha_composite_backward(rand(*r.shape[:1], *r.shape[2:]), rand(*l.shape), r, l, [False, True]))))
    for b, h, w, k, nms, window in ((2, 7, 9, 5, 3, 3), (1, 1, 1, 1, 1, 1), (1, 40, 40, 8, 5, 33)):
        scores = rand(b, h, w)
        cases.append((f"detect_keypoints {h}x{w} window={window}", lambda s=scores, kk=k, n=nms, win=window: (
            ops.detect_keypoints(s, kk, n, win, 0.2),
            # the peak options: strict maxima, a border, per-image sizes (other kernel specialisations)
            ops.detect_keypoints(s, kk, n, win, 0.2, True, 1, torch.tensor([[s.shape[2], s.shape[1]]] * s.shape[0]),
                                 False),
            ops.detect_keypoints_backward(rand(s.shape[0], kk, 2), rand(s.shape[0], kk), s, rand(s.shape[0], kk, 2),
                                          torch.zeros(s.shape[0], kk, dtype=torch.int64), win, 0.2))))
    sizes = ((2, 7, 3, 5), (1, 1, 1, 1)) + (() if QUICK else ((1, 1024, 8, 64),))  # 1024: ~1 min to compile
    for gg, n, c, p in sizes:
        x, y, theta = rand(gg, n, c), rand(gg, n, c), rand(c, p)
        cases.append((f"sliced_wasserstein N={n}", lambda x=x, y=y, t=theta: (
            ops.sliced_wasserstein(x, y, t),
            ops.sliced_wasserstein_backward(rand(x.shape[0]), x, y, t, rand(*x.shape[:2], t.shape[1]).float(),
                                            rand(*x.shape[:2], t.shape[1]).float(), [True, True, True]))))
    for m, n, c in ((4, 10, 3), (1, 1, 1), (3, 5, 130)):
        protos, feats, noise = rand(m, c), rand(n, c), rand(n, c)
        cases.append((f"gmm_prototype_samples {m}x{n}x{c}", lambda p=protos, f=feats, z=noise: (
            ops.gmm_prototype_samples(p, f, z, 0.01),
            ops.gmm_prototype_samples_backward(rand(*z.shape), p, z, torch.zeros(z.shape[0], dtype=torch.int64)))))
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--quick", action="store_true", help="skip the N=1024 sliced Wasserstein sort")
    args = parser.parse_args(argv)
    global QUICK
    QUICK = args.quick
    from tusk.ops.triton import _common

    recorder = Recorder(args.arch)
    original = _common.launch
    for name, module in list(sys.modules.items()):
        if name.startswith("tusk.ops.triton.") and getattr(module, "launch", None) is original:
            module.launch = recorder
    start = time.perf_counter()
    for dtype_name in args.dtype:
        for name, run in _cases(getattr(torch, dtype_name)):
            try:
                run()
            except Exception:
                recorder.failures.append(f"{name} {dtype_name}: {traceback.format_exc(limit=4)}")
    print(f"compiled {recorder.compiled} kernel specialisations for sm_{args.arch} "
          f"in {time.perf_counter() - start:.0f} s; {len(recorder.failures)} failures")
    for failure in recorder.failures:
        print("FAILED:", failure)
    return 1 if recorder.failures else 0


if __name__ == "__main__":
    sys.exit(main())
