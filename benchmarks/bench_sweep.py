"""Throughput of a sweep on Dask (jitgrad.distributed): N moons trainings (default 64 x 300 steps,
Adam, float64) run serially in this process, then on a LocalCluster of 1 and of 2 single-threaded
worker processes (made as ``sweep`` makes them: ``local_cluster``), and the per-task overhead
(Dask scheduling + pickling + the SQLite write + the driver's loop) against the time of a task.

    python benchmarks/bench_sweep.py [--n 64] [--steps 300] [--repeats 3]

Cluster start-up and the workers' warm-up (Numba cache load) are outside the timings: each cluster
first runs a small sweep of its own. Overhead per task = (wall time x workers - sum of the task
times measured inside the tasks) / N, i.e. the worker time not spent training.
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

from jitgrad.distributed import grid, local_cluster, sweep, train_mlp  # noqa: E402


def configs(n, steps, tag):
    lrs = [0.01, 0.03, 0.1, 0.3]
    hiddens = [8, 16]
    seeds = range(-(-n // (len(lrs) * len(hiddens))))
    return [dict(c, tag=tag) for c in grid(lrs, hiddens, seeds, steps)][:n]


def run_on(workers, n, steps, repeats, tmp):
    walls, overheads, task_means = [], [], []
    with local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as client:
        sweep(train_mlp, configs(2 * workers, 5, "warm"), client=client,
              store=os.path.join(tmp, f"warm{workers}.db"), progress=False)
        for r in range(repeats):
            t0 = time.perf_counter()
            recs = sweep(train_mlp, configs(n, steps, f"w{workers}r{r}"), client=client,
                         store=os.path.join(tmp, f"w{workers}r{r}.db"), progress=False)
            wall = time.perf_counter() - t0
            assert all(rec["status"] == "ok" for rec in recs)
            task_s = sum(rec["seconds"] for rec in recs)
            walls.append(wall)
            overheads.append((wall * workers - task_s) / n)
            task_means.append(task_s / n)
    return statistics.median(walls), statistics.median(overheads), statistics.median(task_means)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(f"{args.n} trainings x {args.steps} steps (moons 2-H-H-1, H in 8/16, Adam, float64), "
          f"{os.cpu_count()} cores, median of {args.repeats}; load average before: "
          f"{os.getloadavg()[0]:.2f}")
    train_mlp(configs(1, 5, "warm")[0])
    t0 = time.perf_counter()
    for c in configs(args.n, args.steps, "serial"):
        train_mlp(c)
    serial = time.perf_counter() - t0
    print(f"serial, this process: {serial:6.2f} s  ({args.n / serial:5.1f} trainings/s)")
    with tempfile.TemporaryDirectory() as tmp:
        res = {w: run_on(w, args.n, args.steps, args.repeats, tmp) for w in (1, 2)}
    for w, (wall, over, task) in res.items():
        print(f"Dask, {w} worker{'s' if w > 1 else ' '}:     {wall:6.2f} s  ({args.n / wall:5.1f} "
              f"trainings/s)  task {task * 1e3:6.1f} ms, overhead {over * 1e3:5.1f} ms/task "
              f"({over / task:.1%} of a task)")
    print(f"2 workers / 1 worker throughput: {res[1][0] / res[2][0]:.2f}x")


if __name__ == "__main__":
    main()
