"""python -m benchmarks.report: run every benchmark in this process, print a markdown report.

    python -m benchmarks.report                  # everything (a few minutes; cold start ~1 min)
    python -m benchmarks.report --quick          # tiny sizes, one round: checks that it runs
    python -m benchmarks.report -k "W1 or W3"    # a subset (pytest -k expression)

Writes <out>/report.md, <out>/report.png (log-scale bars, if matplotlib is installed) and
<out>/results.json (pytest-benchmark's raw statistics). Default out: benchmarks/results/.
Timings come from pytest-benchmark (benchmarks/test_*.py); this module only runs and renders them.
"""
import argparse
import datetime
import json
import os
import platform
import sys

from . import _env

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM_ORDER = ("jitgrad", "jitgrad-compiled", "torch", "torch-compiled", "jax", "autograd",
                "micrograd", "fused")
CASE_ORDER = ("W1", "W2", "W3", "W4-forward", "W4-forward-nograd", "W4-backward", "W4-step", "W5",
              "W5-batched", "W6-T10", "W6-T100", "W6-T1000", "W7", "W8", "W8-forward", "W8-backward")
COLOURS = {"jitgrad": "#d62728", "jitgrad-compiled": "#ff9896", "torch": "#1f77b4",
           "torch-compiled": "#aec7e8", "jax": "#2ca02c", "autograd": "#9467bd",
           "micrograd": "#8c564b", "fused": "#7f7f7f"}


# ---- running ---------------------------------------------------------------------------------
def run_benchmarks(json_path, keyword=None, cpu_time=False):
    import pytest
    args = [HERE, "-q", "-p", "no:cacheprovider", "--benchmark-only",
            f"--benchmark-json={json_path}", "--benchmark-columns=median,iqr,rounds",
            "--benchmark-sort=name", "-rs"]
    if cpu_time:
        args.append("--benchmark-timer=time.process_time")
    if keyword:
        args += ["-k", keyword]
    return pytest.main(args)


def _slim(json_path):
    """Drop pytest-benchmark's per-round samples (megabytes) and keep the statistics."""
    with open(json_path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        b["stats"].pop("data", None)
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1)


def load_results(json_path):
    """{(case, system): {"median": s, "iqr": s, "rounds": n, **extra_info}}, plus machine info."""
    with open(json_path) as f:
        data = json.load(f)
    res = {}
    for b in data["benchmarks"]:
        e = b["extra_info"]
        res[(e["case"], e["system"])] = dict(e, median=b["stats"]["median"], iqr=b["stats"]["iqr"],
                                             rounds=b["stats"]["rounds"],
                                             iterations=b["stats"].get("iterations", 1))
    return res, data


# ---- environment -----------------------------------------------------------------------------
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def _blas():
    try:
        import threadpoolctl
        import numpy  # noqa: F401
        import scipy.linalg  # noqa: F401
        libs = threadpoolctl.threadpool_info()
        return ", ".join(f"{i['internal_api']} {i.get('version') or ''} "
                         f"{i.get('architecture') or ''} ({i['num_threads']} thr)".replace("  ", " ")
                         for i in libs if i["internal_api"] != "openmp")
    except ImportError:
        return "unknown (pip install threadpoolctl to show it)"


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment():
    env = {"date": datetime.date.today().isoformat(), "cpu": _cpu_model(),
           "cores": os.cpu_count(), "python": platform.python_version(), "blas": _blas()}
    for pkg in ("jitgrad", "numpy", "numba", "torch", "jax", "autograd", "micrograd"):
        env[pkg] = _version(pkg)
    try:
        import jitgrad
        env["jitgrad"] = jitgrad.__version__
    except ImportError:
        pass
    return env


def availability():
    from .adapters import SYSTEMS, Unavailable, load
    out = {}
    for s in SYSTEMS:
        try:
            load(s)
            out[s] = None
        except Unavailable as e:
            out[s] = str(e)
    return out


# ---- formatting ------------------------------------------------------------------------------
def fmt_time(s):
    if s is None:
        return "–"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_ratio(r):
    if r is None:
        return "–"
    return f"{r:.2g}×" if r < 10 else f"{r:.0f}×"


def _median(res, case, system):
    r = res.get((case, system))
    return None if r is None else r["median"]


def _per_unit(res, case, system):
    r = res.get((case, system))
    if r is None or not r.get("units"):
        return None
    return r["median"] / r["units"]


def startup_parts(r, cpu):
    """(import, first step, first float32 step) seconds of a start-up result, CPU or wall."""
    k = "_cpu_s" if cpu and "import_cpu_s" in r else "_s"
    return r["import" + k], r["first_step" + k], r["first_float32" + k]


def fmt_startup(r, cpu):
    if r is None:
        return "–"
    imp, first, f32 = startup_parts(r, cpu)
    other = "" if not cpu or "import_cpu_s" not in r else \
        f" [wall {r['import_s'] + r['first_step_s']:.2f} s]"
    return (f"{imp + first:.2f} s{other} (import {imp:.2f} + first step {first:.2f}; "
            f"then a float32 graph's first step {f32:.2f})")


def targets(res, cpu=False):
    """[(target, measured, verdict)] for the goals the project set itself."""
    rows = []

    def speedup(case, other, mine="jitgrad"):
        j, o = _median(res, case, mine), _median(res, case, other)
        return None if j is None or o is None else o / j

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**not met**")

    def faster(s):
        return "–" if s is None else f"{s:.2f}× faster" if s >= 1 else f"{1 / s:.2f}× slower"

    for case in ("W1", "W2", "W3"):
        s = speedup(case, "torch")
        rows.append((f"{case}: jitgrad eager at least as fast as torch eager", faster(s),
                     verdict(None if s is None else s >= 1)))
    for case, times in (("W1", 10), ("W3", 50), ("W7", 5)):
        s = speedup(case, "torch", "jitgrad-compiled")
        rows.append((f"{case}: jitgrad.compile ≥ {times}× faster than torch eager", faster(s),
                     verdict(None if s is None else s >= times)))
    for case, within in (("W1", 1.5), ("W2", 1.15), ("W4-step", 3)):
        c, f = _median(res, case, "jitgrad-compiled"), _median(res, case, "fused")
        r = None if c is None or f is None else c / f
        rows.append((f"{case}: jitgrad.compile within {within}× of hand-fused",
                     "–" if r is None else f"{r:.2f}× the hand-fused time",
                     verdict(None if r is None else r <= within)))
    r = res.get(("W4-step", "jitgrad-compiled"))
    rows.append(("W4: trace of the 10k-op step under 100 ms", "–" if r is None else
                 f"{r['first_call_s'] * 1e3:.0f} ms (first call, eager + trace)",
                 verdict(None if r is None else r["first_call_s"] < 0.1)))
    stepped = ("W1", "W2", "W3", "W4-step", "W7")       # the workloads with a compiled step
    # (beside each: the eager first step's, which loads the same kernels from Numba's cache)
    firsts = [(case, res[(case, "jitgrad-compiled")]["first_call_s"] / _median(res, case, "jitgrad"),
               (res[(case, "jitgrad")].get("first_call_s") or 0) / _median(res, case, "jitgrad"))
              for case in stepped if (case, "jitgrad-compiled") in res and _median(res, case, "jitgrad")]
    rows.append(("first call of a compiled step in a new process (eager + trace + loading kernels) "
                 "≤ 3× one eager step",
                 ", ".join(f"{case} {r:.1f}× (eager's first step {e:.1f}×)" for case, r, e in firsts) or "–",
                 verdict(None if not firsts else all(r <= 3 for _, r, _ in firsts))))
    news = []           # (case, a new model's first compiled call, after a full collection, eager)
    for case in stepped:
        c, e = res.get((case, "jitgrad-compiled")), res.get((case, "jitgrad"))
        if c and e and c.get("new_model_first_call_s"):
            news.append((case, c["new_model_first_call_s"], c.get("new_model_first_call_cold_s"), e))
    rows.append(("first call of a new model's compiled step in a sweep, its ops' kernels loaded "
                 "(eager + trace) ≤ 3× one eager step",
                 "; ".join(f"{case} {t / e['median']:.1f}× the median step"
                           + (f" (after a full gc.collect(): {cold / e['median']:.1f}×)" if cold else "")
                           for case, t, cold, e in news) or "–",
                 verdict(None if not news else all(t <= 3 * e["median"] for _, t, _, e in news))))
    for system, limit, goal in (("jitgrad", 1.5, "jitgrad eager within 1.5× of torch eager"),
                                ("jitgrad-compiled", 1.0, "jitgrad.compile at least as fast as torch eager")):
        s = speedup("W8", "torch", system)       # issue 14's LeNet-5 targets
        rows.append((f"W8: {goal}", faster(s), verdict(None if s is None else 1 / s <= limit)))

    for case in ("W1", "W3"):
        s = speedup(case, "torch")
        rows.append((f"{case}: jitgrad ≥ 5× faster than torch eager",
                     "–" if s is None else f"{s:.2f}× faster" if s >= 1 else f"{1 / s:.2f}× slower",
                     verdict(None if s is None else s >= 5)))
    j, f = _median(res, "W2", "jitgrad"), _median(res, "W2", "fused")
    r = None if j is None or f is None else j / f
    rows.append(("W2: jitgrad within 1.25× of hand-fused", "–" if r is None else f"{r:.2f}× the hand-fused time",
                 verdict(None if r is None else r <= 1.25)))
    b = _per_unit(res, "W4-backward", "jitgrad")
    rows.append(("W4: backward ≤ 50 ns per node", "–" if b is None else f"{b * 1e9:.0f} ns/node",
                 verdict(None if b is None else b <= 50e-9)))
    fj, ft = _per_unit(res, "W4-forward", "jitgrad"), _per_unit(res, "W4-forward", "torch")
    r = None if fj is None or ft is None else fj / ft
    measured = "–" if r is None else f"{fj * 1e6:.2f} µs vs {ft * 1e6:.2f} µs = {r:.2f}×"
    rows.append(("W4: recording per op at most torch eager's", measured,
                 verdict(None if r is None else r <= 1)))
    rows.append(("W4: forward per op ≤ 1/4 of torch eager's", measured,
                 verdict(None if r is None else r <= 0.25)))
    s = speedup("W5", "torch")
    rows.append(("W5: Jacobian faster than torch.autograd.functional.jacobian",
                 "–" if s is None else f"{s:.2f}× faster" if s >= 1 else f"{1 / s:.2f}× slower",
                 verdict(None if s is None else s > 1)))
    for kind, limit in (("cold", 20), ("warm", 1.5)):
        r = res.get((f"startup-{kind}", "jitgrad"))
        t = None if r is None else sum(startup_parts(r, cpu)[:2])
        extra = "" if r is None else f" (a float32 graph then adds {startup_parts(r, cpu)[2]:.2f} s)"
        rows.append((f"{kind} start: import + first backward (one dtype) ≤ {limit:g} s",
                     "–" if t is None else f"{t:.2f} s{extra}", verdict(None if t is None else t <= limit)))
    return rows


def render(res, env, avail, meta=None):
    systems = [s for s in SYSTEM_ORDER if any(k[1] == s for k in res)]
    cases = [c for c in CASE_ORDER if any(k[0] == c for k in res)]
    quick = any(r.get("quick") for r in res.values())
    cpu = bool(meta) and "CPU" in meta.get("timer", "")
    L = []
    L.append(f"# jitgrad benchmarks{' (QUICK MODE: tiny sizes, one round, not a measurement)' if quick else ''}\n")
    L.append(f"{env['date']} · {env['cpu']} · {env['cores']} cores · Python {env['python']} · "
             f"numpy {env['numpy']} · numba {env['numba']} · BLAS: {env['blas']}\n")
    L.append("Versions: " + ", ".join(f"{k} {env[k]}" for k in ("jitgrad", "torch", "jax", "autograd",
                                                                "micrograd") if env.get(k)) + "\n")
    if os.environ.get("OPENBLAS_CORETYPE"):
        L.append(f"Note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set, which pins "
                 "numpy's BLAS kernel (jitgrad's matmuls) to an older one.\n")
    L.append("One thread for every system; warm-up excluded; each cell is the median of ≥ 15 timed "
             "rounds (≥ 5 for calls over 50 ms)" + (f", timed with {meta['timer']}" if meta else "")
             + ".\n")
    if meta and meta.get("load_before"):
        L.append(f"Machine load average (1, 5, 15 min) before the run: {meta['load_before']}, after: "
                 f"{meta['load_after']}; a load near or above the core count means other processes "
                 "shared the CPU and the timings are noisier.\n")

    L.append("## Median time per step, and time ÷ jitgrad's time\n")
    L.append("A ratio above 1 means the system is slower than jitgrad; `fused` is the hand-fused "
             "Numba step, the practical limit.\n")
    L.append("| workload | " + " | ".join(systems) + " |")
    L.append("|---|" + "---|" * len(systems))
    for c in cases:
        j = _median(res, c, "jitgrad")
        cells = []
        for s in systems:
            m = _median(res, c, s)
            if m is None:
                cells.append("–")
            elif s == "jitgrad" or j is None:
                cells.append(fmt_time(m))
            else:
                cells.append(f"{fmt_time(m)} ({fmt_ratio(m / j)})")
        L.append(f"| {c} | " + " | ".join(cells) + " |")
    L.append("")

    fused_cases = [c for c in cases if _median(res, c, "fused") is not None]
    if fused_cases:
        L.append("## Time ÷ the hand-fused limit\n")
        others = [s for s in systems if s != "fused"]
        L.append("| workload | " + " | ".join(others) + " |")
        L.append("|---|" + "---|" * len(others))
        for c in fused_cases:
            f = _median(res, c, "fused")
            L.append(f"| {c} | " + " | ".join(
                fmt_ratio(_median(res, c, s) / f) if _median(res, c, s) else "–" for s in others) + " |")
        L.append("")

    compiled = [(c, s) for c in cases for s in ("jitgrad-compiled", "torch-compiled")
                if (c, s) in res]
    if compiled:
        L.append("## Compiled steps: first call, and first call + 1,000 steps\n")
        L.append("The first call of a compiled step runs eagerly and traces it (jitgrad) or compiles it "
                 "(torch.compile: Dynamo + Inductor); every later call replays. jitgrad compiles no "
                 "code per model: its kernels are the op table's, compiled once per install.\n")
        L.append("A new model's first call is that of a model built after the first in the same "
                 "process (median of 5), once the first has loaded its ops' kernels: what each model "
                 "of a sweep pays, models built one after another (after 3 untimed ones, which grow the "
                 "heap). After a full collection: each "
                 "model built right after a gc.collect(), which walks every object in the process "
                 "and so leaves the CPU caches cold (a sweep's own collections are rare).\n")
        L.append("| workload | system | first call | a new model's first call | after a full collection | "
                 "median step | first call + 1,000 steps | note |")
        L.append("|---|---|---|---|---|---|---|---|")

        def new(r, key="new_model_first_call_s"):
            return fmt_time(r[key]) if r.get(key) else "–"
        for c, s in compiled:
            r = res[(c, s)]
            first = r.get("first_call_s") or 0.0
            L.append(f"| {c} | {s} | {fmt_time(first)} | {new(r)} | {new(r, 'new_model_first_call_cold_s')} | "
                     f"{fmt_time(r['median'])} | {fmt_time(first + 1000 * r['median'])} | {r.get('note') or ''} |")
        for c in cases:
            for system in ("torch", "jitgrad"):
                e = res.get((c, system))
                if e and any(k == c for k, _ in compiled):
                    L.append(f"| {c} | {system} eager | – | {new(e)} | {new(e, 'new_model_first_call_cold_s')} | "
                             f"{fmt_time(e['median'])} | {fmt_time(1000 * e['median'])} | |")
        L.append("")

    L.append("## Engine numbers (the core-engine issue), jitgrad beside torch eager\n")
    L.append("| metric | jitgrad | torch | jitgrad ÷ torch |")
    L.append("|---|---|---|---|")

    def unit_row(label, case):
        j, t = _per_unit(res, case, "jitgrad"), _per_unit(res, case, "torch")
        if j is None and t is None:
            return
        L.append(f"| {label} | {fmt_time(j)} | {fmt_time(t)} | {fmt_ratio(j / t) if j and t else '–'} |")
    unit_row("W4 forward, recording, per op (0-dim tensors)", "W4-forward")
    unit_row("W4 forward under no_grad, per op", "W4-forward-nograd")
    jf, jn = _per_unit(res, "W4-forward", "jitgrad"), _per_unit(res, "W4-forward-nograd", "jitgrad")
    tf, tn = _per_unit(res, "W4-forward", "torch"), _per_unit(res, "W4-forward-nograd", "torch")
    if jf and jn:
        rj, rt = jf - jn, (tf - tn if tf and tn else None)
        L.append(f"| recording overhead per op (difference of the two rows above) | "
                 f"{fmt_time(rj)} | {fmt_time(rt)} | {fmt_ratio(rj / rt) if rt and rt > 0 else '–'} |")
    unit_row("W4 backward per node (10k-node graph)", "W4-backward")
    unit_row("W3 forward + backward per op (8-vector)", "W3")
    for kind in ("cold", "warm"):
        rj, rt = res.get((f"startup-{kind}", "jitgrad")), res.get((f"startup-{kind}", "torch"))
        if rj or rt:
            L.append(f"| {kind} start: import + first W1 step, new process | {fmt_startup(rj, cpu)} | "
                     f"{fmt_startup(rt, cpu)} | – |")
    L.append("")

    L.append("## Targets (reported, not asserted)\n")
    L.append("| target | measured | |")
    L.append("|---|---|---|")
    for t, m, v in targets(res, cpu):
        L.append(f"| {t} | {m} | {v} |")
    L.append("")

    L.append("## Workloads and notes\n")
    seen = set()
    for c in cases:
        descr = next((r["workload"] for k, r in res.items() if k[0] == c and r.get("workload")), "")
        notes = "; ".join(f"{k[1]}: {r['note']}" for k, r in sorted(res.items()) if k[0] == c and r.get("note"))
        if descr and (c, descr) not in seen:
            seen.add((c, descr))
            L.append(f"- **{c}**: {descr}" + (f". {notes}" if notes else ""))
    missing = {s: why for s, why in avail.items() if why}
    for s, why in missing.items():
        L.append(f"- **{s} skipped**: {why}")
    L.append("")
    return "\n".join(L)


def chart(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    systems = [s for s in SYSTEM_ORDER if any(k[1] == s for k in res)]
    cases = [c for c in CASE_ORDER if any(k[0] == c for k in res)]
    fig, ax = plt.subplots(figsize=(15, 7))
    width = 0.8 / max(len(systems), 1)
    labelled = set()
    for k, c in enumerate(cases):
        present = [s for s in systems if _median(res, c, s) is not None]
        for i, s in enumerate(present):      # centre each group on its tick, without gaps
            y = _median(res, c, s) * 1e6
            x = k + (i - (len(present) - 1) / 2) * width
            ax.bar(x, y, width, color=COLOURS.get(s), label=None if s in labelled else s)
            labelled.add(s)
            if s == "jitgrad":
                ax.annotate(fmt_time(y / 1e6), (x, y), ha="center", va="bottom", fontsize=8,
                            rotation=90, xytext=(0, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=20)
    ax.set_ylabel("median time per call (µs, log scale)")
    quick = any(r.get("quick") for r in res.values())
    ax.set_title("jitgrad vs peers, one thread, lower is better" + (" (QUICK MODE)" if quick else ""))
    ax.grid(axis="y", which="major", alpha=0.4)
    handles, labels = ax.get_legend_handles_labels()
    if not labels:                  # nothing timed per call (a start-up-only selection)
        plt.close(fig)
        return None
    order = sorted(range(len(labels)), key=lambda i: SYSTEM_ORDER.index(labels[i]))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], ncol=len(labels),
              loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=10, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round (a smoke run)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="output directory")
    p.add_argument("-k", dest="keyword", help="pytest -k expression selecting benchmarks")
    p.add_argument("--seconds", type=float, help="timing budget per benchmark (default 1.0)")
    p.add_argument("--wall-clock", action="store_true",
                   help="time with the wall clock (perf_counter) instead of this process's CPU "
                        "time; the default CPU time leaves out the time other processes hold the "
                        "CPU, which on a shared machine is most of the noise")
    p.add_argument("--from-json", help="render an existing results.json instead of running")
    a = p.parse_args(argv)
    _env.one_thread()
    if a.quick:
        os.environ["JITGRAD_BENCH_QUICK"] = "1"
    if a.seconds:
        os.environ["JITGRAD_BENCH_SECONDS"] = str(a.seconds)
    os.makedirs(a.out, exist_ok=True)
    json_path = a.from_json or os.path.join(a.out, "results.json")
    meta_path = os.path.join(os.path.dirname(json_path), "run.json")
    if not a.from_json:
        load_before = _loadavg()
        code = run_benchmarks(json_path, a.keyword, cpu_time=not a.wall_clock)
        _slim(json_path)
        with open(meta_path, "w") as f:
            json.dump({"load_before": load_before, "load_after": _loadavg(),
                       "timer": "wall clock (perf_counter)" if a.wall_clock else
                       "process CPU time (time.process_time)",
                       "env": environment()}, f, indent=1)
        if code not in (0, 5) or not os.path.exists(json_path):
            print(f"benchmarks failed (pytest exit code {code})", file=sys.stderr)
            return int(code) or 1
    res, _ = load_results(json_path)
    meta = None
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    md = render(res, meta["env"] if meta else environment(), availability(), meta)
    png = chart(res, os.path.join(a.out, "report.png"))
    if png:
        md += f"\n![benchmark chart]({os.path.basename(png)})\n"
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"\nwrote {os.path.join(a.out, 'report.md')}" + (f" and {png}" if png else
                                                             " (no chart: matplotlib is not installed, or "
                                                             "nothing was timed per call)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
