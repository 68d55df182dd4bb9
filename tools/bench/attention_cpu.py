#!/usr/bin/python3
"""Side-by-side CPU attention benchmark: Orchard's cpuflash against PyTorch's unfused
attention and numpy's float32 matmul (the machine's roofline), measured in one run on one
machine, reported as ratios.

Usage (from the repository root):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/bench/attention_cpu.py

Options: --rounds R (default 7), --iters K (calls per measurement, default 5), --shapes
(comma list like 2048x64,2048x64c), --no-memory (skip the N = 16384 memory run),
--markdown FILE (also write the table there).

What it does, per round, for every shape, one measurement after the other so that load
from other processes hits both sides alike:
  * numpy: C = A @ B for 2048 x 2048 float32 matrices -> GFLOP/s (the roofline);
  * PyTorch (torch.set_num_threads = cores): softmax(Q K^T * scale [causal mask]) V, the
    forward under no_grad, then forward + backward with autograd;
  * cpuflash: the package's Go benchmarks BenchmarkForward and BenchmarkForwardBackward
    for the same shape, from a test binary built once (go test -c), run with
    -test.run '^$' -test.bench ... -test.benchtime 1x -test.count K and parsed.
Each measurement is the best (minimum) of K single calls after a warm-up call: on a
shared machine the minimum is the call least disturbed by other processes, on both
sides. Ratios are taken within a round; the main table shows the median over rounds and
the range. A second table divides each side's best time over all rounds, which estimates
both sides undisturbed when other processes hit some rounds harder than others. FLOPs are counted as FlashAttention counts them: forward 4*B*H*N*M*D, backward
2.5x, causal halved.

Requirements: Debian's python3-torch, python3-numpy, libopenblas0-pthread; Go.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

PKG = "./go/attention/cpuflash"


def flops(b, h, n, m, d, causal, fwdbwd):
    f = 4.0 * b * h * n * m * d
    if causal:
        f /= 2
    return f * (3.5 if fwdbwd else 1.0)


def openblas_info():
    """Which OpenBLAS numpy uses and its core kernel: threadpoolctl when installed,
    otherwise the library's own openblas_get_corename/openblas_get_config via ctypes."""
    try:
        import threadpoolctl  # noqa: F401

        infos = threadpoolctl.threadpool_info()
        for i in infos:
            if i.get("internal_api") == "openblas":
                return "threadpoolctl: %s %s, architecture %s, threading %s, %s threads" % (
                    i.get("filepath"), i.get("version"), i.get("architecture"),
                    i.get("threading_layer"), i.get("num_threads"))
        return "threadpoolctl: no OpenBLAS found (%s)" % [i.get("internal_api") for i in infos]
    except ImportError:
        pass
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "openblas" in p and ".so" in p:
                libs.add(p)
    for p in sorted(libs):
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return "threadpoolctl not installed; %s reports core %s, config '%s', %d threads" % (
                p, lib.openblas_get_corename().decode(), lib.openblas_get_config().decode().strip(),
                lib.openblas_get_num_threads())
        except (OSError, AttributeError):
            continue
    return "threadpoolctl not installed and no OpenBLAS library found in the process"


def best_of(fn, iters):
    """Minimum wall time of iters calls of fn, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def numpy_gflops(iters):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    return 2 * 2048**3 / best_of(lambda: a @ b, iters) / 1e9


def torch_attention(q, k, v, causal, mask):
    s = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if causal:
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class TorchAttention:
    """One shape's inputs for PyTorch, timed forward (no_grad) and forward + backward."""

    def __init__(self, b, h, n, d, causal):
        g = torch.Generator().manual_seed(1)
        self.q, self.k, self.v, self.do = (torch.randn(b, h, n, d, generator=g) for _ in range(4))
        self.causal = causal
        self.mask = torch.ones(n, n, dtype=torch.bool).triu(1) if causal else None
        self.qg, self.kg, self.vg = (x.clone().requires_grad_(True) for x in (self.q, self.k, self.v))

    def fwd(self):
        with torch.no_grad():
            torch_attention(self.q, self.k, self.v, self.causal, self.mask)

    def fwdbwd(self):
        for x in (self.qg, self.kg, self.vg):
            x.grad = None
        o = torch_attention(self.qg, self.kg, self.vg, self.causal, self.mask)
        o.backward(self.do)


def go_name(b, h, n, d, causal):
    return "B%d_H%d_N%d_D%d%s" % (b, h, n, d, "_causal" if causal else "")


BENCH_LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(.*)$")


def run_go(binary, pattern, count, shapes=""):
    """Runs the matching benchmarks count times, one call each, and returns for each the
    metrics of its fastest run."""
    out = subprocess.run(
        [binary, "-test.run", "^$", "-test.bench", pattern, "-test.benchtime", "1x", "-test.count", str(count),
         "-cpuflash.shapes", shapes],
        check=True, capture_output=True, text=True, cwd=os.path.join(os.getcwd(), PKG)).stdout
    res = {}
    for line in out.splitlines():
        m = BENCH_LINE.match(line.strip())
        if m:
            metrics = {"ns/op": float(m.group(3))}
            for val, unit in re.findall(r"([\d.]+) (\S+)", m.group(4)):
                metrics[unit] = float(val)
            name = m.group(1)
            if name not in res or metrics["ns/op"] < res[name]["ns/op"]:
                res[name] = metrics
    return res


def go_time(binary, bench, b, h, n, d, causal, iters):
    name = go_name(b, h, n, d, causal)
    shape = "%dx%d%s" % (n, d, "c" if causal else "")
    res = run_go(binary, "^%s$/^%s$" % (bench, name), iters + 1, shape)  # the first run warms up
    return res["%s/%s" % (bench, name)]["ns/op"] / 1e9


def parse_shapes(s):
    out = []
    for item in s.split(","):
        causal = item.endswith("c")
        n, d = item.rstrip("c").split("x")
        out.append((1, 8, int(n), int(d), causal))
    return out


def fmt_range(xs, f="%.2f"):
    return (f + " (" + f + "–" + f + ")") % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--shapes", default="512x64,1024x64,2048x64,4096x64,2048x128,2048x64c")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--markdown")
    args = ap.parse_args()

    cores = os.cpu_count()
    torch.set_num_threads(cores)
    shapes = parse_shapes(args.shapes)
    go_env = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    tmp = tempfile.mkdtemp(prefix="orchard-bench-")
    binary = os.path.join(tmp, "cpuflash.test")
    subprocess.run(["go", "test", "-c", "-o", binary, PKG], check=True)
    kernels = subprocess.run([binary, "-test.run", "^TestIdentity$", "-test.v"], capture_output=True, text=True,
                             cwd=PKG).stdout

    header = [
        "machine: %s, %d cores (os.cpu_count), %s" % (cpu, cores, platform.platform()),
        "%s; torch %s (threads %d); numpy %s" % (go_env, torch.__version__, torch.get_num_threads(), np.__version__),
        "OpenBLAS: " + openblas_info(),
        "OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s" % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                                                      os.environ.get("OPENBLAS_L2_SIZE", "(unset)")),
        "rounds: %d; each measurement the best of %d calls; ratios per round, median over rounds (min–max)" % (
            args.rounds, args.iters),
    ]
    print("\n".join(header), flush=True)

    rows = {s: {"tf": [], "tfb": [], "gf": [], "gfb": [], "roof": []} for s in shapes}
    roofs = []
    for r in range(args.rounds):
        for s in shapes:
            b, h, n, d, causal = s
            roof = numpy_gflops(args.iters)
            roofs.append(roof)
            ta = TorchAttention(b, h, n, d, causal)
            tf = best_of(ta.fwd, args.iters)
            gf = go_time(binary, "BenchmarkForward", b, h, n, d, causal, args.iters)
            tfb = best_of(ta.fwdbwd, args.iters)
            gfb = go_time(binary, "BenchmarkForwardBackward", b, h, n, d, causal, args.iters)
            del ta
            for k, v in (("tf", tf), ("tfb", tfb), ("gf", gf), ("gfb", gfb), ("roof", roof)):
                rows[s][k].append(v)
            print("round %d %s: numpy %.0f GFLOP/s | torch fwd %.1f ms fwd+bwd %.1f ms | cpuflash fwd %.1f ms "
                  "fwd+bwd %.1f ms" % (r + 1, go_name(*s), roof, tf * 1e3, tfb * 1e3, gf * 1e3, gfb * 1e3), flush=True)

    lines = ["| shape | PyTorch fwd ms | cpuflash fwd ms | fwd speed-up | PyTorch fwd+bwd ms | cpuflash fwd+bwd ms "
             "| fwd+bwd speed-up | cpuflash fwd GFLOP/s | fwd / numpy matmul | cpuflash fwd+bwd GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in shapes:
        x = rows[s]
        b, h, n, d, causal = s
        ff, fb = flops(b, h, n, n, d, causal, False), flops(b, h, n, n, d, causal, True)
        sp_f = [t / g for t, g in zip(x["tf"], x["gf"])]
        sp_fb = [t / g for t, g in zip(x["tfb"], x["gfb"])]
        gfl = [ff / g / 1e9 for g in x["gf"]]
        roof_ratio = [ff / g / 1e9 / rf for g, rf in zip(x["gf"], x["roof"])]
        gflb = [fb / g / 1e9 for g in x["gfb"]]
        lines.append("| %s | %.1f | %.1f | %s× | %.1f | %.1f | %s× | %.0f | %s | %.0f |" % (
            go_name(*s), statistics.median(x["tf"]) * 1e3, statistics.median(x["gf"]) * 1e3, fmt_range(sp_f),
            statistics.median(x["tfb"]) * 1e3, statistics.median(x["gfb"]) * 1e3, fmt_range(sp_fb),
            statistics.median(gfl), fmt_range([100 * v for v in roof_ratio], "%.0f") + " %",
            statistics.median(gflb)))
    lines.append("")
    lines.append("numpy float32 matmul 2048³: %s GFLOP/s (one measurement before each shape of each round)" %
                 fmt_range(roofs, "%.0f"))
    lines.append("")
    lines.append("Best time of each side over all rounds:")
    lines.append("")
    lines.append("| shape | PyTorch fwd ms | cpuflash fwd ms | fwd speed-up | PyTorch fwd+bwd ms | cpuflash fwd+bwd ms "
                 "| fwd+bwd speed-up | cpuflash fwd GFLOP/s | fwd / best numpy matmul |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    best_roof = max(roofs)
    for s in shapes:
        x = rows[s]
        b, h, n, d, causal = s
        ff = flops(b, h, n, n, d, causal, False)
        tf, gf, tfb, gfb = min(x["tf"]), min(x["gf"]), min(x["tfb"]), min(x["gfb"])
        lines.append("| %s | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× | %.0f | %.0f %% |" % (
            go_name(*s), tf * 1e3, gf * 1e3, tf / gf, tfb * 1e3, gfb * 1e3, tfb / gfb, ff / gf / 1e9,
            100 * ff / gf / 1e9 / best_roof))
    lines.append("")
    lines.append("best numpy float32 matmul 2048³: %.0f GFLOP/s" % best_roof)
    causal_rows = [s for s in shapes if s[4]]
    for s in causal_rows:
        full = (s[0], s[1], s[2], s[3], False)
        if full in rows:
            cf = [c / f for c, f in zip(rows[s]["gf"], rows[full]["gf"])]
            cfb = [c / f for c, f in zip(rows[s]["gfb"], rows[full]["gfb"])]
            lines.append("cpuflash causal / unmasked time, %s: forward %s, forward+backward %s per round; "
                         "best times: forward %.2f, forward+backward %.2f" % (
                             go_name(*full), fmt_range(cf), fmt_range(cfb),
                             min(rows[s]["gf"]) / min(rows[full]["gf"]), min(rows[s]["gfb"]) / min(rows[full]["gfb"])))

    if not args.no_memory:
        res = run_go(binary, "^BenchmarkForwardBackwardMemory$", 1)
        for name, m in res.items():
            lines.append("%s: %.0f MiB allocated beyond inputs and outputs (upper bound on the peak), "
                         "%.1f s" % (name.split("/", 1)[1], m.get("MiB-beyond-io", float("nan")), m["ns/op"] / 1e9))

    table = "\n".join(lines)
    print()
    print(table)
    print()
    print("kernels: " + " ".join(l.strip() for l in kernels.splitlines() if "kernels" in l) or "(see TestIdentity)")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join("    " + h for h in header) + "\n\n" + table + "\n")
    with open(os.path.join(tmp, "raw.json"), "w") as f:
        json.dump({go_name(*s): v for s, v in rows.items()}, f)
    print("raw measurements: " + os.path.join(tmp, "raw.json"))


if __name__ == "__main__":
    sys.exit(main())
