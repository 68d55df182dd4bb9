#!/usr/bin/python3
"""Side-by-side CPU attention benchmark: Orchard's cpuflash against PyTorch 2.x's fused
scaled_dot_product_attention (SDPA) and PyTorch 1.13's unfused attention, with the
machine's float32 matmul (sgemm) as the roofline, measured in one run on one machine and
reported as ratios.

Usage (from the repository root; the chroot is built by ../shared/anchors/torch2-chroot.sh):

    python3 tools/bench/attention_cpu.py \\
        --sdpa-python 'chroot /opt/torch2 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3'

Options: --threads T (threads on every side: torch.set_num_threads and GOMAXPROCS; default
all cores), --sdpa-python CMD (the Python with PyTorch 2.x; "" skips the SDPA column),
--unfused-python CMD (the Python with PyTorch 1.13; default /usr/bin/python3, "" skips it),
--rounds R (default 5), --iters K (calls per measurement, default 5), --shapes (comma list
like 2048x64,2048x64c), --no-memory (skip the N = 16384 memory runs), --markdown FILE (also
write the tables there), --kernels SET (force cpuflash's kernel set, e.g. avx2).

How it measures. The driver (this file, any Python 3 with numpy) starts one worker per
PyTorch — the same file run with --worker in the given Python — and talks to it over a pipe.
Workers set torch.set_num_threads(T) and run with
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736, so that
freed memory is kept as a caching allocator would (otherwise these virtual machines fault
fresh pages in at about 1.8 ms/MiB on every call); cpuflash writes into preallocated
outputs and keeps its scratch between calls (the benchmark's -cpuflash.into, the default).
Per round, for every shape, one measurement after the other so that load from other
processes hits all sides alike: sgemm 2048³ (torch.mm in the SDPA worker: the OpenBLAS
PyTorch 2.x calls, and numpy in the driver), SDPA forward (no_grad) and cpuflash forward,
SDPA forward + backward and cpuflash forward + backward, then PyTorch 1.13 unfused
(softmax(Q Kᵀ·scale) V) forward and forward + backward. Each measurement is the best of K
calls after a warm-up call. Ratios are taken within a round; tables show the median over
rounds and the range, then each side's best time over all rounds. FLOPs as FlashAttention
counts them: forward 4·B·H·N·M·D, forward + backward 3.5×, causal halved.

It also prints the kernels that ran: torch.profiler's operator names for one shape in each
worker, and cpuflash's kernel set. The memory run compares, at N = 16384 H8 D64,
forward + backward's growth of the peak resident set beyond inputs and outputs in a fresh
SDPA worker with cpuflash's (fresh process, fresh executor).
"""

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

PKG = "./go/attention/cpuflash"
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def flops(b, h, n, m, d, causal, fwdbwd):
    f = 4.0 * b * h * n * m * d
    if causal:
        f /= 2
    return f * (3.5 if fwdbwd else 1.0)


def best_of(fn, iters):
    """Minimum wall time of iters calls of fn, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# ---------------------------------------------------------------- worker (runs in the PyTorch Python)

def worker():
    import resource

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    fused = hasattr(F, "scaled_dot_product_attention")
    state = {}

    def attention(q, k, v, causal):
        if fused:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        s = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
        if causal:
            n = q.shape[-2]
            s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        return torch.softmax(s, dim=-1) @ v

    def inputs(b, h, n, d):
        key = (b, h, n, d)
        if state.get("key") != key:
            state.clear()
            g = torch.Generator().manual_seed(1)
            q, k, v, do = (torch.randn(b, h, n, d, generator=g) for _ in range(4))
            state.update(key=key, q=q, k=k, v=v, do=do,
                         grad=[x.clone().requires_grad_(True) for x in (q, k, v)])
        return state

    def fwd(s, causal):
        with torch.no_grad():
            attention(s["q"], s["k"], s["v"], causal)

    def fwdbwd(s, causal):
        qg, kg, vg = s["grad"]
        for x in (qg, kg, vg):
            x.grad = None
        attention(qg, kg, vg, causal).backward(s["do"])

    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "info":
            cfg = torch.__config__.show()
            blas = [l.strip(" -") for l in cfg.splitlines() if l.strip(" -").startswith(("OpenMP", "CPU capability"))]
            with open("/proc/self/maps") as f:
                blas += sorted({l.split()[-1] for l in f if "openblas" in l and ".so" in l})
            out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "fused": fused,
                   "capability": getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "?")(),
                   "python": sys.version.split()[0], "config": blas}
        elif op == "sgemm":
            a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
            out = {"gflops": 2 * 2048 ** 3 / best_of(lambda: a @ b, req["iters"]) / 1e9}
        elif op == "fwd":
            s = inputs(req["b"], req["h"], req["n"], req["d"])
            out = {"s": best_of(lambda: fwd(s, req["causal"]), req["iters"])}
        elif op == "fwdbwd":
            s = inputs(req["b"], req["h"], req["n"], req["d"])
            out = {"s": best_of(lambda: fwdbwd(s, req["causal"]), req["iters"])}
        elif op == "profile":
            s = inputs(req["b"], req["h"], req["n"], req["d"])
            names = {}
            for what, fn in (("fwd", lambda: fwd(s, req["causal"])), ("fwdbwd", lambda: fwdbwd(s, req["causal"]))):
                fn()
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    fn()
                ev = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
                names[what] = ["%s %.0f%%" % (e.key, 100.0 * e.self_cpu_time_total /
                                              max(1, sum(x.self_cpu_time_total for x in ev))) for e in ev[:6]]
            out = names
        elif op == "memory":
            b, h, n, d = req["b"], req["h"], req["n"], req["d"]
            g = torch.Generator().manual_seed(1)
            q, k, v, do = (torch.randn(b, h, n, d, generator=g) for _ in range(4))
            qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))
            r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            o = attention(qg, kg, vg, False)
            o.backward(do)
            r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            io = 4 * o.numel() * 4  # O, dQ, dK, dV in float32
            out = {"mib": (r1 - r0 - io) / 2 ** 20}
        else:
            out = {"error": "unknown op " + op}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------- driver

class Worker:
    """A PyTorch worker process: this file run with --worker by the given command."""

    def __init__(self, cmd, threads):
        argv = shlex.split(cmd)
        src = open(os.path.abspath(__file__)).read()
        # The worker may run in a chroot that cannot see this file: pass the source inline.
        env = ["env", "GLIBC_TUNABLES=" + TUNABLES, "BENCH_THREADS=%d" % threads]
        self.p = subprocess.Popen(env + argv + ["-c", src, "--worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def call(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("worker died on %s" % req)
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(out["error"])
        return out

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def go_name(b, h, n, d, causal):
    return "B%d_H%d_N%d_D%d%s" % (b, h, n, d, "_causal" if causal else "")


BENCH_LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(.*)$")


def run_go(binary, pattern, benchtime, shapes="", env=None):
    """Runs the matching benchmarks once with -test.benchtime benchtime and returns each
    one's metrics."""
    out = subprocess.run(
        [binary, "-test.run", "^$", "-test.bench", pattern, "-test.benchtime", benchtime, "-cpuflash.shapes", shapes],
        check=True, capture_output=True, text=True, cwd=PKG, env=env).stdout
    res = {}
    for line in out.splitlines():
        m = BENCH_LINE.match(line.strip())
        if m:
            metrics = {"ns/op": float(m.group(3))}
            for val, unit in re.findall(r"([-\d.]+) (\S+)", m.group(4)):
                metrics[unit] = float(val)
            res[m.group(1)] = metrics
    return res


def go_time(binary, bench, shape, iters, env):
    b, h, n, d, causal = shape
    name = go_name(*shape)
    spec = "%dx%d%s" % (n, d, "c" if causal else "")
    res = run_go(binary, "^%s$/^%s$" % (bench, name), "%dx" % iters, spec, env)  # warms up once itself
    return res["%s/%s" % (bench, name)]["best-ms"] / 1e3


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
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sdpa-python", default="chroot /opt/torch2 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3")
    ap.add_argument("--unfused-python", default="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--shapes", default="512x64,1024x64,2048x64,4096x64,2048x128,2048x64c")
    ap.add_argument("--kernels", default="", help="cpuflash kernel set (ORCHARD_CPUFLASH_KERNELS)")
    ap.add_argument("--threads", type=int, default=0, help="threads on every side (default: all cores)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if args.worker:
        return worker()

    import numpy as np

    cores = os.cpu_count()
    shapes = parse_shapes(args.shapes)
    go_env = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    family = " ".join(l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(("CPU family", "Model:")))
    avx512 = "avx512f" in lscpu

    threads = args.threads or cores
    env = dict(os.environ, GOMAXPROCS=str(threads))
    if args.kernels:
        env["ORCHARD_CPUFLASH_KERNELS"] = args.kernels
    tmp = tempfile.mkdtemp(prefix="orchard-bench-")
    binary = os.path.join(tmp, "cpuflash.test")
    subprocess.run(["go", "test", "-c", "-o", binary, PKG], check=True)
    ident = subprocess.run([binary, "-test.run", "^TestIdentity$", "-test.v"], capture_output=True, text=True,
                           cwd=PKG, env=env).stdout
    kernels = " ".join(l.strip() for l in ident.splitlines() if "kernels:" in l) or "(see TestIdentity)"

    sdpa = Worker(args.sdpa_python, threads) if args.sdpa_python else None
    unf = Worker(args.unfused_python, threads) if args.unfused_python else None
    header = [
        "machine: %s (family/model %s, AVX-512 %s), %d cores, %s" % (cpu, family, "yes" if avx512 else "no", cores,
                                                                      platform.platform()),
        "%s; cpuflash %s, GOMAXPROCS %d; numpy %s" % (go_env, kernels, threads, np.__version__),
    ]
    for label, w in (("SDPA", sdpa), ("unfused", unf)):
        if w:
            i = w.call(op="info")
            header.append("%s: torch %s (python %s, %d threads, fused SDPA %s, CPU capability %s; %s)" % (
                label, i["torch"], i["python"], i["threads"], i["fused"], i["capability"], "; ".join(i["config"])))
    header.append("rounds: %d; each measurement the best of %d calls after a warm-up; ratios per round, "
                  "median over rounds (min–max)" % (args.rounds, args.iters))
    print("\n".join(header), flush=True)

    profiles = []
    probe = shapes[0]
    for label, w in (("PyTorch SDPA", sdpa), ("PyTorch unfused", unf)):
        if w:
            pr = w.call(op="profile", b=probe[0], h=probe[1], n=probe[2], d=probe[3], causal=probe[4])
            for what in ("fwd", "fwdbwd"):
                profiles.append("%s %s %s: %s" % (label, what, go_name(*probe), ", ".join(pr[what])))
    print("\n".join(profiles), flush=True)

    keys = ("sf", "sfb", "uf", "ufb", "gf", "gfb", "sgemm", "numpy")
    rows = {s: {k: [] for k in keys} for s in shapes}
    rng = np.random.default_rng(0)
    na, nb = rng.standard_normal((2048, 2048), dtype=np.float32), rng.standard_normal((2048, 2048), dtype=np.float32)
    for r in range(args.rounds):
        for s in shapes:
            b, h, n, d, causal = s
            q = dict(b=b, h=h, n=n, d=d, causal=causal, iters=args.iters)
            x = rows[s]
            x["numpy"].append(2 * 2048 ** 3 / best_of(lambda: na @ nb, args.iters) / 1e9)
            if sdpa:
                x["sgemm"].append(sdpa.call(op="sgemm", iters=args.iters)["gflops"])
                x["sf"].append(sdpa.call(op="fwd", **q)["s"])
            x["gf"].append(go_time(binary, "BenchmarkForward", s, args.iters, env))
            if sdpa:
                x["sfb"].append(sdpa.call(op="fwdbwd", **q)["s"])
            x["gfb"].append(go_time(binary, "BenchmarkForwardBackward", s, args.iters, env))
            if unf:
                x["uf"].append(unf.call(op="fwd", **q)["s"])
                x["ufb"].append(unf.call(op="fwdbwd", **q)["s"])
            print("round %d %s: " % (r + 1, go_name(*s)) + " | ".join(
                "%s %.1f" % (k, v[-1] * 1e3 if k not in ("sgemm", "numpy") else v[-1]) for k, v in x.items() if v),
                flush=True)

    lines = []
    med = statistics.median
    if sdpa:
        lines += ["PyTorch 2.x fused SDPA against cpuflash (speed-up = PyTorch time / cpuflash time; "
                  "target ≥ 1.25; fwd / sgemm target ≥ 75 %):", "",
                  "| shape | SDPA fwd ms | cpuflash fwd ms | fwd speed-up | SDPA fwd+bwd ms | cpuflash fwd+bwd ms "
                  "| fwd+bwd speed-up | cpuflash fwd GFLOP/s | fwd / sgemm | cpuflash fwd+bwd GFLOP/s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in shapes:
            x = rows[s]
            ff, fb = flops(s[0], s[1], s[2], s[2], s[3], s[4], False), flops(s[0], s[1], s[2], s[2], s[3], s[4], True)
            lines.append("| %s | %.1f | %.1f | %s× | %.1f | %.1f | %s× | %.0f | %s | %.0f |" % (
                go_name(*s), med(x["sf"]) * 1e3, med(x["gf"]) * 1e3,
                fmt_range([t / g for t, g in zip(x["sf"], x["gf"])]),
                med(x["sfb"]) * 1e3, med(x["gfb"]) * 1e3, fmt_range([t / g for t, g in zip(x["sfb"], x["gfb"])]),
                med([ff / g / 1e9 for g in x["gf"]]),
                fmt_range([100 * ff / g / 1e9 / sg for g, sg in zip(x["gf"], x["sgemm"])], "%.0f") + " %",
                med([fb / g / 1e9 for g in x["gfb"]])))
        allg = [v for s in shapes for v in rows[s]["sgemm"]]
        lines += ["", "sgemm 2048³ (torch.mm, PyTorch 2.x's OpenBLAS): %s GFLOP/s; numpy (driver's OpenBLAS): %s "
                  "GFLOP/s" % (fmt_range(allg, "%.0f"), fmt_range([v for s in shapes for v in rows[s]["numpy"]], "%.0f")),
                  "", "Best time of each side over all rounds:", "",
                  "| shape | SDPA fwd ms | cpuflash fwd ms | fwd speed-up | SDPA fwd+bwd ms | cpuflash fwd+bwd ms "
                  "| fwd+bwd speed-up | fwd / best sgemm |", "|---|---|---|---|---|---|---|---|"]
        for s in shapes:
            x = rows[s]
            ff = flops(s[0], s[1], s[2], s[2], s[3], s[4], False)
            lines.append("| %s | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× | %.0f %% |" % (
                go_name(*s), min(x["sf"]) * 1e3, min(x["gf"]) * 1e3, min(x["sf"]) / min(x["gf"]),
                min(x["sfb"]) * 1e3, min(x["gfb"]) * 1e3, min(x["sfb"]) / min(x["gfb"]),
                100 * ff / min(x["gf"]) / 1e9 / max(allg)))
        lines.append("")
    if unf:
        lines += ["PyTorch 1.13 unfused attention against cpuflash:", "",
                  "| shape | unfused fwd ms | cpuflash fwd ms | fwd speed-up | unfused fwd+bwd ms | cpuflash fwd+bwd ms "
                  "| fwd+bwd speed-up |", "|---|---|---|---|---|---|---|"]
        for s in shapes:
            x = rows[s]
            lines.append("| %s | %.1f | %.1f | %s× | %.1f | %.1f | %s× |" % (
                go_name(*s), med(x["uf"]) * 1e3, med(x["gf"]) * 1e3,
                fmt_range([t / g for t, g in zip(x["uf"], x["gf"])]), med(x["ufb"]) * 1e3, med(x["gfb"]) * 1e3,
                fmt_range([t / g for t, g in zip(x["ufb"], x["gfb"])])))
        lines.append("")
    for s in [s for s in shapes if s[4]]:
        full = (s[0], s[1], s[2], s[3], False)
        if full in rows:
            lines.append("cpuflash causal / unmasked time, %s: forward %s, forward+backward %s (per round); "
                         "target ≤ 0.52" % (go_name(*full),
                                             fmt_range([c / f for c, f in zip(rows[s]["gf"], rows[full]["gf"])]),
                                             fmt_range([c / f for c, f in zip(rows[s]["gfb"], rows[full]["gfb"])])))

    if not args.no_memory:
        res = run_go(binary, "^BenchmarkForwardBackwardMemory$", "1x", env=env)
        for name, m in res.items():
            lines.append("cpuflash %s forward+backward: %.0f MiB peak RSS growth beyond inputs and outputs, %.0f MiB "
                         "allocated beyond them; %.1f s" % (name.split("/", 1)[1], m.get("MiB-rss-beyond-io", float("nan")),
                                                           m.get("MiB-beyond-io", float("nan")), m["ns/op"] / 1e9))
        if args.sdpa_python:
            w = Worker(args.sdpa_python, threads)
            mem = w.call(op="memory", b=1, h=8, n=16384, d=64)["mib"]
            w.close()
            lines.append("PyTorch SDPA B1_H8_N16384_D64 forward+backward: %.0f MiB peak RSS growth beyond inputs and "
                         "outputs (fresh process)" % mem)

    for w in (sdpa, unf):
        if w:
            w.close()
    table = "\n".join(lines)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join("    " + h for h in header + profiles) + "\n\n" + table + "\n")
    with open(os.path.join(tmp, "raw.json"), "w") as f:
        json.dump({go_name(*s): v for s, v in rows.items()}, f)
    print("raw measurements: " + os.path.join(tmp, "raw.json"))


if __name__ == "__main__":
    sys.exit(main())
