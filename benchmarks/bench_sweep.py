"""Throughput of a sweep on Dask (jitgrad.distributed): N moons trainings (default 64 x 300 steps,
Adam, float64), serially in this process (eager and compiled), then on a LocalCluster of 1 and of 2
single-threaded worker processes (made as ``sweep`` makes them: ``local_cluster``) in three modes,
interleaved in rounds so that a busy machine slows each alike:

- eager, 1 per task: op-by-op training, one configuration per Dask task (the sweep before
  jitgrad.compile and batching);
- compiled, 1 per task: ``train_mlp``'s compiled step, one configuration per task;
- compiled, auto: the default, several configurations per task (``batch_size_for``).

    python benchmarks/bench_sweep.py [--n 64] [--steps 300] [--repeats 3]

Cluster start-up and the workers' warm-up (Numba cache load) are outside the timings: each cluster
first runs a small sweep of its own. Overhead per training = (wall time x workers - sum of the
task times measured inside the tasks) / N: the worker time not spent training. It is split, per
worker, from the tasks' start times into: start (sweep called -> its first training starts:
plugin registration, submission, first dispatch), between (gaps between trainings on a worker:
Dask's per-task scheduling, pickling, result handling), tail (its last training ends -> the last
training anywhere ends: idle while another worker finishes the last tasks, the imbalance) and final
(the last training ends -> sweep returns: the last results' transfer, store write and return). The
per-task cost (Dask scheduling + pickling + store) is start + between + final; the tail is load
imbalance, which the 2-worker/1-worker throughput ratio measures. "Setup"
is the part of a task before its first step (data, model, the optimizer, the trace when a worker
meets a model shape first); "driver CPU" is this process's CPU time per training (the scheduler
runs here too), which competes with the workers on a 2-core machine.
"""
import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distributed import Client  # noqa: E402

from jitgrad.distributed import Store, grid, local_cluster, sweep, train_mlp  # noqa: E402

MODES = {"eager, 1 per task": (True, 1), "compiled, 1 per task": (False, 1),
         "compiled, auto": (False, "auto")}


def configs(n, steps, tag, eager=False):
    lrs = [0.01, 0.03, 0.1, 0.3]
    hiddens = [8, 16]
    seeds = range(-(-n // (len(lrs) * len(hiddens))))
    return [dict(c, tag=tag) for c in grid(lrs, hiddens, seeds, steps, eager=eager)][:n]


def timeline(recs, t0, t1, workers):
    """Per-training seconds of (start, between, tail, final) summed over the workers (see the
    docstring): the end is split into tail (a worker idle after its last training while another
    still trains: the imbalance of the last tasks) and final (after the last training anywhere:
    the last results' transfer, the store write and the return)."""
    start = between = tail = final = 0.0
    by_worker = {}
    for r in recs:
        by_worker.setdefault(r["worker"], []).append((r["started"], r["started"] + r["seconds"]))
    last = max(spans[-1][1] for spans in map(sorted, by_worker.values()))
    for spans in by_worker.values():
        spans.sort()
        start += spans[0][0] - t0
        between += sum(max(0.0, b[0] - a[1]) for a, b in zip(spans, spans[1:]))
        tail += last - spans[-1][1]
        final += t1 - last
    idle_workers = workers - len(by_worker)          # a worker that got no task idled throughout
    tail += idle_workers * (t1 - t0)
    n = len(recs)
    return start / n, between / n, tail / n, final / n


def one_sweep(client, workers, n, steps, mode, tag, tmp):
    eager, batch_size = MODES[mode]
    cpu0, t0, wall0 = time.process_time(), time.time(), time.perf_counter()
    recs = sweep(train_mlp, configs(n, steps, tag, eager), client=client,
                 store=os.path.join(tmp, f"{tag}.db"), progress=False, batch_size=batch_size)
    wall, t1, cpu = time.perf_counter() - wall0, time.time(), time.process_time() - cpu0
    assert all(rec["status"] == "ok" for rec in recs)
    task = sum(r["seconds"] for r in recs) / n
    loop = sum(steps / r["steps_per_s"] for r in recs) / n
    parts = timeline(recs, t0, t1, workers)
    return dict(wall=wall, task=task, setup=task - loop, overhead=(wall * workers - task * n) / n,
                per_task=parts[0] + parts[1] + parts[3],
                driver_cpu=cpu / n, steps_per_s=statistics.median(r["steps_per_s"] for r in recs),
                parts=parts)


def store_writes(tmp, n):
    """Seconds per record of n records stored one transaction each, and 8 to a transaction."""
    recs = [dict(key=f"k{i}", params={"i": i}, seed=i, status="ok", loss=0.5, accuracy=1.0,
                 steps_per_s=1e3, result={"loss": 0.5}, worker="w", started=0.0, seconds=0.1)
            for i in range(n)]
    out = []
    for name, size in (("one", 1), ("eight", 8)):
        with Store(os.path.join(tmp, f"writes-{name}.db")) as db:
            t0 = time.perf_counter()
            for i in range(0, n, size):
                db.put_many(recs[i: i + size])
            out.append((time.perf_counter() - t0) / n)
    return out


def spread(values, scale=1.0, fmt="{:.1f}"):
    values = [v * scale for v in values]
    return (fmt.format(statistics.median(values)) + " (" + fmt.format(min(values)) + "-"
            + fmt.format(max(values)) + ")")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    n, steps = args.n, args.steps
    print(f"{n} trainings x {steps} steps (moons 2-H-H-1, H in 8/16, Adam, float64), "
          f"{os.cpu_count()} cores, median (min-max) of {args.repeats}; load average before: "
          f"{os.getloadavg()[0]:.2f}")
    for eager in (True, False):
        train_mlp(configs(1, 5, "warm", eager)[0])
        t0 = time.perf_counter()
        recs = [train_mlp(c) for c in configs(n, steps, "serial", eager)]
        serial = time.perf_counter() - t0
        rate = statistics.median(r["steps_per_s"] for r in recs)
        print(f"serial, this process, {'eager   ' if eager else 'compiled'}: {serial:6.2f} s "
              f"({n / serial:5.1f} trainings/s, median {rate:,.0f} steps/s)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in (1, 2):
            with local_cluster(w) as cluster, Client(cluster, set_as_default=False) as client:
                sweep(train_mlp, configs(2 * w, 5, "warm"), client=client,
                      store=os.path.join(tmp, f"warm{w}.db"), progress=False)
                for r in range(args.repeats):
                    for mode in MODES:
                        tag = f"w{w}r{r}{mode.split(',')[0]}{MODES[mode][1]}"
                        results.setdefault((w, mode), []).append(
                            one_sweep(client, w, n, steps, mode, tag, tmp))
        writes = store_writes(tmp, n)
    print("load average after:", f"{os.getloadavg()[0]:.2f}")
    for (w, mode), runs in results.items():
        get = lambda k: [run[k] for run in runs]                              # noqa: E731
        print(f"Dask, {w} worker{'s' if w > 1 else ' '}, {mode:21s}: "
              f"wall {spread(get('wall'), fmt='{:.2f}')} s, "
              f"{statistics.median(n / x for x in get('wall')):5.1f} trainings/s, "
              f"{spread(get('steps_per_s'), fmt='{:,.0f}')} steps/s")
        print(f"    task {spread(get('task'), 1e3)} ms (setup {spread(get('setup'), 1e3, '{:.2f}')}), "
              f"overhead {spread(get('overhead'), 1e3)} ms/training = "
              f"{spread([o / t for o, t in zip(get('overhead'), get('task'))], 100)} % of a training; "
              f"split start/between/tail/final "
              + "/".join(f"{statistics.median(run['parts'][i] for run in runs) * 1e3:.2f}" for i in range(4))
              + f" ms; driver CPU {spread(get('driver_cpu'), 1e3)} ms/training")
        print(f"    per-task cost (start + between + final, without the tail's imbalance): "
              f"{spread(get('per_task'), 1e3, '{:.2f}')} ms/training = "
              f"{spread([o / t for o, t in zip(get('per_task'), get('task'))], 100)} % of a training")
    for mode in MODES:
        one, two = ([run["wall"] for run in results[(w, mode)]] for w in (1, 2))
        ratios = [a / b for a, b in zip(one, two)]
        print(f"2 workers / 1 worker throughput, {mode:21s}: "
              f"{statistics.median(one) / statistics.median(two):.2f}x "
              f"(repeat by repeat {min(ratios):.2f}-{max(ratios):.2f}x)")
    print(f"store write per record: {writes[0] * 1e3:.2f} ms one per transaction, "
          f"{writes[1] * 1e3:.2f} ms eight per transaction")


if __name__ == "__main__":
    main()
