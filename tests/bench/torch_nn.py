#!/usr/bin/python3
# The PyTorch side of bench_nn: reads bench_nn's result lines (default /tmp/bench_nn.txt, as
# bench_nn writes them), times the same op on the same shape in PyTorch (torch 1.13, CPU,
# torch.set_num_threads(threads), best of several runs) and prints one line per case:
#   op key=value... ours_ms=A torch_ms=B speedup=B/A [bound=...]
# bound= says when even 1.5x PyTorch's time is out of reach on this machine: for GEMM-shaped
# ops, 1.5x PyTorch's rate (nominal FLOPs / time) against bench_nn's measured FMA peak: above it,
# only an algorithm with fewer multiplies (Winograd for 3x3-like kernels; none for 1x1 convs and
# linear) could get there, by at least the factor given; for memory-bound ops, 1.5x PyTorch's
# bytes per second (as bench_nn counts them) against the in-place STREAM triad rate.
# usage: torch_nn.py [results.txt] [threads] [cpu]
# cpu: time by process CPU time / threads, to compare with `bench_nn -c -t 1` on a machine busy
# with other work (wall times are meaningless there).
import math
import sys
import time

import torch
import torch.nn.functional as F

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench_nn.txt"
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
clock = time.perf_counter
if len(sys.argv) > 3 and sys.argv[3] == "cpu":
    clock = lambda: time.process_time() / threads
torch.set_num_threads(threads)
torch.manual_seed(0)


def best(fn, min_total=0.5):
    fn()
    b, tot, runs = float("inf"), 0.0, 0
    while runs < 3 or (tot < min_total and runs < 50):
        t = clock()
        fn()
        e = clock() - t
        b, tot, runs = min(b, e), tot + e, runs + 1
    return b


def conv_case(d, backward):
    N, C, H, W, OC = d["N"], d["C"], d["H"], d["W"], d["OC"]
    x = torch.randn(N, C, H, W)
    w = torch.randn(OC, C, d["KH"], d["KW"])
    b = torch.randn(OC)
    sym = d["PT"] == d["PB"] and d["PL"] == d["PR"]
    pad = (d["PT"], d["PL"]) if sym else (0, 0)
    xp = x if sym else F.pad(x, (d["PL"], d["PR"], d["PT"], d["PB"]))
    if not backward:
        return lambda: F.conv2d(xp, w, b, stride=d["S"], padding=pad)
    y = F.conv2d(xp, w, b, stride=d["S"], padding=pad)
    g = torch.randn_like(y)
    return lambda: torch.ops.aten.convolution_backward(
        g, xp, w, [OC], [d["S"]] * 2, list(pad), [1, 1], False, [0, 0], 1,
        [d.get("dx", 1) == 1, True, True])


def convt_case(d, backward):
    x = torch.randn(d["N"], d["C"], d["H"], d["W"])
    w = torch.randn(d["C"], d["OC"], d["K"], d["K"])
    b = torch.randn(d["OC"])
    S, P = d["S"], d["P"]
    if not backward:
        return lambda: F.conv_transpose2d(x, w, b, stride=S, padding=P)
    y = F.conv_transpose2d(x, w, b, stride=S, padding=P)
    g = torch.randn_like(y)
    return lambda: torch.ops.aten.convolution_backward(
        g, x, w, [d["OC"]], [S, S], [P, P], [1, 1], True, [0, 0], 1, [True, True, True])


def attention(d, backward):
    N, T, C, h = d["N"], d["T"], d["C"], d["heads"]
    D = C // h
    q, k, v = (torch.randn(N * h, T, D, requires_grad=backward) for _ in range(3))

    def fwd():
        a = torch.softmax(torch.baddbmm(torch.empty(N * h, T, T), q, k.transpose(1, 2),
                                        beta=0, alpha=1 / math.sqrt(D)), dim=-1)
        return torch.bmm(a, v)
    if not backward:
        return lambda: fwd()
    g = torch.randn(N * h, T, D)
    return lambda: torch.autograd.grad(fwd(), (q, k, v), g)


def case(op, d):
    if op in ("conv2d_fwd", "conv2d_fwd_pre", "conv2d_fwd_unet", "conv2d_bwd", "conv2d_bwd_unet"):
        return conv_case(d, "_bwd" in op)
    if op in ("convt2d_fwd", "convt2d_bwd"):
        return convt_case(d, op.endswith("bwd"))
    if op in ("attention_fwd", "attention_bwd"):
        return attention(d, op.endswith("bwd"))
    if op == "linear_fwd":
        x, w, b = torch.randn(d["N"], d["IN"]), torch.randn(d["OUT"], d["IN"]), torch.randn(d["OUT"])
        return lambda: F.linear(x, w, b)
    if op == "linear_bwd":
        x, w, g = torch.randn(d["N"], d["IN"]), torch.randn(d["OUT"], d["IN"]), torch.randn(d["N"], d["OUT"])
        return lambda: (g @ w, g.t() @ x, g.sum(0))
    if op.startswith("group_norm"):
        N, C, HW, G = d["N"], d["C"], d["H"] * d["W"], d["G"]
        x, gm, bt = torch.randn(N, C, d["H"], d["W"]), torch.randn(C), torch.randn(C)
        if op == "group_norm_fwd":
            return lambda: F.group_norm(x, G, gm, bt, 1e-6)
        _, mean, rstd = torch.ops.aten.native_group_norm(x, gm, bt, N, C, HW, G, 1e-6)
        g = torch.randn_like(x)
        return lambda: torch.ops.aten.native_group_norm_backward(g, x, mean, rstd, gm, N, C, HW, G,
                                                                 [True, True, True])
    shape = (d.get("N", 1), d.get("C", 1), d.get("H", 1), d.get("W", 1))
    if op == "silu_fwd":
        x = torch.randn(shape)
        return lambda: F.silu(x)
    if op == "silu_bwd":
        x, g = torch.randn(shape), torch.randn(shape)
        return lambda: torch.ops.aten.silu_backward(g, x)
    if op == "add":
        a, b = torch.randn(shape), torch.randn(shape)
        return lambda: torch.add(a, b, out=a)
    if op == "upsample2x_fwd":
        x = torch.randn(shape)
        return lambda: F.interpolate(x, scale_factor=2.0, mode="nearest")
    if op == "upsample2x_bwd":
        g = torch.randn(shape[0], shape[1], 2 * shape[2], 2 * shape[3])
        return lambda: torch.ops.aten.upsample_nearest2d_backward(
            g, [2 * shape[2], 2 * shape[3]], list(shape), 2.0, 2.0)
    if op == "concat":
        a, b = torch.randn(shape), torch.randn(shape)
        return lambda: torch.cat([a, b], 1)
    if op == "max_pool2d":
        x = torch.randn(shape)
        return lambda: F.max_pool2d(x, d["K"], d["S"], d["P"])
    if op == "avg_pool2d":
        x = torch.randn(shape)
        return lambda: F.avg_pool2d(x, d["K"], d["S"], d["P"], count_include_pad=bool(d["cip"]))
    if op == "bilinear":
        x = torch.randn(shape)
        return lambda: F.interpolate(x, size=(d["OH"], d["OW"]), mode="bilinear",
                                     align_corners=False)
    if op == "softmax":
        x = torch.randn(d["rows"], d["cols"])
        return lambda: torch.softmax(x, -1)
    return None


def main():
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print(f"torch_nn: {path}: no bench_nn results (run bench_nn first)")
        return
    print(f"# torch_nn: torch {torch.__version__}, {threads} threads; speedup = torch / ours")
    peak = {}
    cases = fast = bound = 0
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        op, *kv = line.split()
        d = {}
        for item in kv:
            k, _, v = item.partition("=")
            try:
                d[k] = int(v)
            except ValueError:
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
        if op == "peak":
            peak = d
            continue
        if "ms" not in d:
            continue
        grad = op.endswith("bwd")
        with torch.set_grad_enabled(grad and op.startswith("attention")):
            fn = case(op, d)
            if fn is None:
                continue
            t = best(fn) * 1e3
        dims = " ".join(x for x in kv if not x.split("=")[0] in ("ms", "gflops", "sgemm", "ratio", "gbs"))
        note = ""
        if "gflops" in d and "fma_gflops" in peak:
            need = 1.5 * d["gflops"] * d["ms"] / t
            if need > peak["fma_gflops"]:
                cut = need / peak["fma_gflops"]
                note = f" bound=1.5x_needs_{need:.0f}_GFLOP/s_of_{peak['fma_gflops']:.0f}_peak_(multiplies/{cut:.2f})"
        elif "gbs" in d and "triad_gbs" in peak:
            need = 1.5 * d["gbs"] * d["ms"] / t
            if need > peak["triad_gbs"]:
                note = f" bound=1.5x_needs_{need:.0f}_GB/s_of_{peak['triad_gbs']:.0f}_triad"
        cases, fast, bound = cases + 1, fast + (t / d["ms"] >= 1.5), bound + (note != "")
        print(f"{op} {dims} ours_ms={d['ms']:.3f} torch_ms={t:.3f} speedup={t / d['ms']:.2f}{note}",
              flush=True)
    print(f"# {fast} of {cases} cases at least 1.5x PyTorch; in {bound} cases 1.5x needs more than "
          "the peak (see bound=)")


main()
