"""jitgrad.distributed: sweeps of many small trainings on Dask (``pip install "jitgrad[distributed]"``).

``sweep(train_fn, configs)`` is a thin layer over Dask's own ``Client.submit`` / ``as_completed``.
Dask does the scheduling, the pickling and the rescheduling of tasks whose worker died; jitgrad adds
only what is specific to it:

- short trainings go several to a task (``batch_size``), so Dask's per-task cost stays small
  against the training; the built-in ``train_mlp`` trains through ``jitgrad.compile``, traced
  once per model shape in each worker;
- each worker runs one BLAS/OpenMP thread (Dask's nanny already sets the variables for the processes
  it spawns; the worker plugin also limits an already-loaded BLAS with threadpoolctl when installed)
  and warms the Numba disk cache once, before its first task, so no task pays for a compile;
- every result is written to a SQLite store the moment its task finishes (one row per configuration,
  keyed by a hash of the configuration), so an interrupted sweep resumes where it stopped and a
  worker killed mid-task costs only that task (its batch), which Dask runs again elsewhere;
- a configuration whose training raises is stored as failed, with its error, and the sweep goes on.

A task's key names its configurations and its sweep call: a sweep interrupted and run again
submits new keys, never one Dask is still cancelling (a resubmitted key would come back
cancelled). ``python -m jitgrad sweep`` (``main`` below) drives it from the command line.
"""
import argparse
import asyncio
import gc
import hashlib
import json
import logging
import math
import os
import socket
import sqlite3
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

try:
    import dask
    from distributed import Client, LocalCluster, as_completed, get_worker
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as e:                                    # pragma: no cover - depends on the env
    raise ImportError('jitgrad.distributed needs Dask: pip install "jitgrad[distributed]"') from e

import jitgrad
from jitgrad.data import make_digits, make_moons
from jitgrad.demo import OPTIMIZERS, as_tensors, make_model, make_step

__all__ = ["sweep", "Store", "config_key", "train_mlp", "grid", "local_cluster", "batch_sizes", "main"]

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def config_key(config):
    """A stable 16-hex-digit key of a configuration dict: same dict, same key, in any process."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha1(canon.encode()).hexdigest()[:16]


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


# ---- the store ---------------------------------------------------------------------------------------
_COLUMNS = ("key", "params", "seed", "status", "loss", "accuracy", "steps_per_s", "result", "error",
            "worker", "started", "seconds")


class Store:
    """SQLite results of a sweep, one row per configuration.

    WAL mode lets readers run beside one writer; every write is one short ``BEGIN IMMEDIATE``
    transaction and waits (busy timeout) for another writer instead of failing, so any number of
    sweeps can share one file. A stored success is never overwritten; a stored failure is replaced
    by the next attempt's result."""

    def __init__(self, path, timeout=60.0):
        self.path = os.fspath(path)
        self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        # no fsync per commit (WAL keeps the file consistent; a power cut may lose the last rows,
        # which a re-run trains again); set first, so creating the table does not sync either
        self._db.execute("PRAGMA synchronous = NORMAL")
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
        # locked" at once, without the busy handler, while another sweep is opening the same file.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, params TEXT NOT NULL,"
                    " seed INTEGER, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),"
                    " loss REAL, accuracy REAL, steps_per_s REAL, result TEXT, error TEXT,"
                    " worker TEXT, started REAL, seconds REAL)")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    self._db.close()
                    raise
                time.sleep(0.01)

    def put(self, record):
        """Store one task's record; returns True if it was written (False: a success was already
        stored under its key, by this sweep or a concurrent one)."""
        return self.put_many([record])[0]

    def put_many(self, records):
        """Store records in one transaction; returns, per record, whether it was written."""
        rows = []
        for record in records:
            row = [record.get(c) for c in _COLUMNS]
            row[1] = json.dumps(record["params"], sort_keys=True, default=_jsonable)
            row[7] = None if record.get("result") is None else json.dumps(record["result"],
                                                                         default=_jsonable)
            rows.append(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
        sql = (f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
               f" ON CONFLICT (key) DO UPDATE SET {updates} WHERE runs.status <> 'ok'")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            written = [self._db.execute(sql, row).rowcount == 1 for row in rows]
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return written

    def done_keys(self):
        """Keys of the configurations already trained successfully."""
        return {k for (k,) in self._db.execute("SELECT key FROM runs WHERE status = 'ok'")}

    def records(self, keys=None):
        """All records (dicts), or those of the given keys, in the order given."""
        cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs ORDER BY rowid")
        rows = {}
        for values in cur:
            rec = dict(zip(_COLUMNS, values))
            rec["params"] = json.loads(rec["params"])
            rec["result"] = None if rec["result"] is None else json.loads(rec["result"])
            rows[rec["key"]] = rec
        return list(rows.values()) if keys is None else [rows[k] for k in keys if k in rows]

    def close(self):
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the workers ------------------------------------------------------------------------------------
_WARMED = set()                          # the warm-ups this process has run (tokens)
_REGISTERED = weakref.WeakKeyDictionary()  # client -> the warm-up token its plugin carries


class JitgradWorkerSetup(WorkerPlugin):
    """Once per worker (and again on a worker that replaces a dead one): one BLAS/OpenMP thread, and
    ``warmup()`` run before the first task, so Numba loads (or, on a cold cache, compiles) the kernels
    once instead of inside a timed task."""

    name = "jitgrad-sweep-setup"

    def __init__(self, warmup=None):
        self.warmup = warmup
        # every sweep registers the plugin again: a process that ran this warm-up skips it
        self.warmup_id = None if warmup is None else dask.base.tokenize(warmup)

    async def setup(self, worker):
        for var in _THREAD_VARS:
            os.environ[var] = "1"
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(1)
        except ImportError:
            pass
        if self.warmup is None or self.warmup_id in _WARMED:
            return
        # off the event loop: a cold compile takes long enough to miss heartbeats
        await asyncio.get_running_loop().run_in_executor(None, self.warmup)
        _WARMED.add(self.warmup_id)
        # the worker's long-lived objects (Dask's and Numba's) out of the collector's sight, or
        # every full collection inside a task walks them (as python -m jitgrad does after compiling)
        gc.collect()
        gc.freeze()


def _run_batch(train_fn, batch):
    """The task: train the (key, configuration) pairs of a batch one after another."""
    return [_run_task(train_fn, config, key) for key, config in batch]


def _run_task(train_fn, config, key):
    """The task: train one configuration; never raises, so a failure is a record like a success."""
    try:
        worker = get_worker().address
    except ValueError:
        worker = f"{socket.gethostname()}:{os.getpid()}"
    started, t0 = time.time(), time.perf_counter()
    rec = dict(key=key, params=config, seed=config.get("seed"), worker=worker, started=started)
    try:
        out = train_fn(dict(config))
        out = dict(out) if isinstance(out, dict) else {"loss": out}
        rec.update(status="ok", result=out, error=None,
                   **{k: None if out.get(k) is None else float(out[k])
                      for k in ("loss", "accuracy", "steps_per_s")})
    except Exception as e:
        rec.update(status="failed", error="".join(traceback.format_exception_only(type(e), e)).strip()
                   + "\n" + "".join(traceback.format_tb(e.__traceback__)[-3:]))
    rec["seconds"] = time.perf_counter() - t0
    return rec


@contextmanager
def _connect(client, workers, connect_timeout):
    """The client to use: the caller's, one to a scheduler address, or a new LocalCluster's."""
    if isinstance(client, Client):
        yield client
        return
    if isinstance(client, str):
        try:
            c = Client(client, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {client} within {connect_timeout} s ({e}); is "
                f"`dask scheduler` running there, and are workers started with `dask worker {client}`?"
            ) from None
        with c:
            yield c
        return
    if client is not None:
        raise TypeError(f"client must be a distributed.Client, a scheduler address or None, "
                        f"not {type(client).__name__}")
    with local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as c:
        yield c


def local_cluster(workers=None):
    """The LocalCluster a sweep without a client runs on: ``workers`` single-threaded worker
    processes (default one per core), no dashboard, no per-task profiling, no task queued ahead
    on a busy worker."""
    # the workers' statistical profiler samples the task's stack every 10 ms, ~7% of a small
    # training; nobody reads it here (no dashboard). Worker saturation 1.0: the scheduler hands a
    # task to a worker when it is free, not one ahead (1.1 rounds up to 2 per thread), so the
    # guided batches (batch_sizes) go to whichever worker finishes first: measured, 2 workers
    # ended 100 ms apart in a 0.6 s sweep with 1.1, within 15 ms with 1.0
    with dask.config.set({"distributed.worker.profile.enabled": False,
                          "distributed.scheduler.worker-saturation": 1.0}):
        return LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                            processes=True, dashboard_address=None, silence_logs=logging.ERROR)


def sweep(train_fn, configs, client=None, store="sweep.db", progress=True, *, workers=None,
          warmup="default", on_result=None, timeout=None, connect_timeout=10, batch_size="auto"):
    """Train ``train_fn(config)`` for every configuration on Dask; returns the records, in the order of
    ``configs``.

    train_fn: a picklable function of one dict returning a dict; its ``loss``, ``accuracy`` and
        ``steps_per_s`` entries get their own columns, the whole dict is stored as JSON.
    configs: dicts of JSON-able values (a ``seed`` entry is stored in its own column). Duplicates run once.
    client: None (a LocalCluster of ``workers`` single-threaded worker processes, default one per
        core), a scheduler address such as ``"tcp://host:8786"``, or a ``distributed.Client``.
    store: path of the SQLite store, one per ``train_fn`` (rows are keyed by the configuration
        alone). Configurations already stored as ``ok`` are not run again; failed ones are.
    warmup: a function run once on each worker before its tasks (``"default"``: one training step of
        each task of ``train_mlp`` with SGD and Adam; None: no warm-up).
    on_result: called with each record as soon as it is stored (an exception from it stops the sweep;
        tasks not yet finished are cancelled and run on the next call).
    timeout: seconds to wait for the whole sweep (``TimeoutError`` after).
    batch_size: configurations per Dask task, trained one after another and stored together when
        the task finishes (one transaction). ``"auto"`` (see ``batch_sizes``): up to 16 in the first
        tasks, decreasing to 1 in the last, so Dask's per-task cost (scheduling, pickling, the
        driver's loop, the store write) stays small against short trainings and the workers still
        finish together. A killed worker costs its whole task, which Dask runs again; results
        are the same either way.

    A LocalCluster spawns its worker processes: a script calling ``sweep`` needs the usual
    ``if __name__ == "__main__":`` guard.

    Each record is a dict with key, params, seed, status ("ok"/"failed"), loss, accuracy,
    steps_per_s, result, error, worker, started (Unix time), seconds (task time) and ``resumed``
    (True if it came from the store without running)."""
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                 or batch_size < 1):
        raise ValueError(f'batch_size must be a positive int or "auto", not {batch_size!r}')
    unique = {}
    for c in configs:
        unique.setdefault(config_key(c), dict(c))
    keys = [config_key(c) for c in configs]
    if warmup == "default":
        warmup = default_warmup
    with Store(store) as db:
        done = db.done_keys()
        todo = {k: c for k, c in unique.items() if k not in done}
        if todo:
            with _connect(client, workers, connect_timeout) as cl:
                _run(cl, db, train_fn, todo, warmup, on_result, timeout, progress, batch_size)
        records = db.records(keys)
    for r in records:
        r["resumed"] = r["key"] not in todo
    return records


def batch_sizes(n, threads, batch_size="auto"):
    """Configurations per task, in submission order. ``"auto"`` is guided self-scheduling: each
    task takes 1/(worker threads) of the configurations still unassigned, at most MAX_BATCH (what
    a killed worker costs, and how long a result waits to be stored) and at least 1. Dask runs
    the tasks in submission order, so the large tasks go first and the last ones are single
    trainings: few tasks, and the workers still finish together."""
    if batch_size != "auto":
        return [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    sizes = []
    while n > 0:
        sizes.append(max(1, min(MAX_BATCH, -(-n // max(1, threads)))))
        n -= sizes[-1]
    return sizes


MAX_BATCH = 16


def _run(cl, db, train_fn, todo, warmup, on_result, timeout, progress, batch_size):
    plugin = JitgradWorkerSetup(warmup)
    # once per client and warm-up (the scheduler gives the plugin to workers that join later):
    # registering waits for every worker's setup, a round trip the size of a short training
    if _REGISTERED.get(cl) != plugin.warmup_id or plugin.warmup_id is None:
        cl.register_plugin(plugin, name=JitgradWorkerSetup.name)
        _REGISTERED[cl] = plugin.warmup_id
    items = list(todo.items())
    threads = sum(cl.nthreads().values()) if batch_size == "auto" else 1
    batches, start = [], 0
    for size in batch_sizes(len(items), threads, batch_size):
        batches.append(items[start: start + size])
        start += size
    # Dask reschedules a task whose worker died under its key; a new sweep call gets new keys,
    # as one interrupted a moment ago may still be cancelling its own
    prefix = f"jitgrad-sweep-{getattr(train_fn, '__qualname__', 'fn')}-{uuid.uuid4().hex[:8]}-"
    futures = {cl.submit(_run_batch, train_fn, b, key=prefix + _batch_key(b), retries=0): b
               for b in batches}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), desc="sweep", unit="run", dynamic_ncols=True)
    try:
        # results come with the futures (fetched on Dask's event loop, not one round trip each),
        # and everything finished since the last look is stored in one transaction
        done = as_completed(futures, timeout=timeout, with_results=True, raise_errors=False,
                            loop=cl.loop)
        for finished in done.batches():
            recs = []
            for fut, result in finished:
                if fut.status == "finished":
                    recs += result
                elif not fut.cancelled():   # Dask gave up on it (its worker died allowed-failures times)
                    exc = fut.exception()
                    recs += [dict(key=k, params=c, seed=c.get("seed"), status="failed",
                                  error=f"{type(exc).__name__}: {exc}", started=time.time())
                             for k, c in futures[fut]]
                # (a task cancelled on the cluster runs on the next call)
                fut.release()
            db.put_many(recs)
            if bar is not None:
                bar.update(len(recs))
            if on_result is not None:
                for rec in recs:
                    on_result(rec)
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            cl.cancel(pending)
        if bar is not None:
            bar.close()


def _batch_key(batch):
    if len(batch) == 1:
        return batch[0][0]
    return f"{len(batch)}x" + hashlib.sha1("".join(k for k, _ in batch).encode()).hexdigest()[:16]


# ---- the training of python -m jitgrad sweep ---------------------------------------------------------
# Per process, the trainers of the last model shapes trained compiled: same-shaped configurations
# reuse one traced step instead of tracing their own (a trace costs about 8 replayed steps).
_TRAINERS = OrderedDict()
_TRAINERS_KEPT = 8
_SEEDING = threading.Lock()


class _Trainer:
    """A model, its optimizer and its training step (compiled, or eager op by op). A compiled step
    is traced once; ``restart`` gives it the next configuration's initial weights and a fresh
    optimizer without a new trace: the weights are copied into the parameters' own storage (the
    replay's guards check that storage) and the optimizer is initialised again on them (the replay
    calls its step and zero_grad as they are)."""

    def __init__(self, task, model, optimizer, lr, compiled):
        name, self.opt_kw = OPTIMIZERS[optimizer]
        self.model = model
        self.opt = getattr(jitgrad.optim, name)(model.parameters(), **dict(self.opt_kw, lr=lr))
        if task == "moons":
            step = make_step(jitgrad, model, self.opt, "hinge")
        else:
            nn, opt = jitgrad.nn, self.opt

            def step(X, y):
                opt.zero_grad()
                score = model(X)
                loss = nn.functional.cross_entropy(score, y)
                loss.backward()
                opt.step()
                return loss, score
        self.step = jitgrad.compile(step) if compiled else step

    def restart(self, model, lr):
        with jitgrad.no_grad():
            for p, init in zip(self.model.parameters(), model.parameters()):
                p.copy_(init)
        self.opt.__init__(self.model.parameters(), **dict(self.opt_kw, lr=lr))


@lru_cache(maxsize=16)        # configurations of one seed share their data (never written)
def _task_data(task, seed, dtype):
    """(training tensors, evaluation inputs, their labels, prediction of a score) of a task."""
    if task == "moons":
        X, y = make_moons(100, noise=0.1, random_state=seed)
        data = as_tensors(jitgrad, X, y, dtype)
        return data, data[0], y > 0, lambda score: score[:, 0] > 0
    if task == "digits":
        X, y = make_digits(800, random_state=seed)
        return ((jitgrad.tensor(X[:500] / 16.0, dtype=dtype), jitgrad.tensor(y[:500])),
                jitgrad.tensor(X[500:] / 16.0, dtype=dtype), y[500:], lambda score: score.argmax(1))
    raise ValueError(f"unknown task {task!r}: moons or digits")


def _task_model(task, hidden, dtype):
    if task == "moons":
        return make_model(jitgrad, hidden, dtype)
    nn = jitgrad.nn
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10)).to(dtype)


def train_mlp(config):
    """Train the MLP of ``config`` full batch; deterministic per configuration (data and weights come
    from ``config["seed"]``). Keys: task ("moons": micrograd's 2-H-H-1 with the hinge loss, or
    "digits": 64-H-H-10 with cross-entropy on 500 make_digits images), lr, hidden, seed, steps,
    optimizer (sgd/adam/adamw/rmsprop, default adam), dtype (default float64), eager (default
    False: the step runs through ``jitgrad.compile``, traced once per model shape and process).
    Compiled and eager training give the same numbers for moons, bit for bit; for digits they agree
    to ~1e-15 (float64): cross-entropy's exp and log run in numpy eagerly and in the C library
    compiled, which may differ in the last bit.
    Returns the final loss, the accuracy (moons: on the training points, as micrograd; digits: on
    300 held-out images) and the training steps per second."""
    task, seed, steps = config.get("task", "moons"), int(config["seed"]), int(config["steps"])
    hidden, lr = int(config["hidden"]), float(config["lr"])
    dtype = getattr(jitgrad, config.get("dtype", "float64"))
    optimizer = config.get("optimizer", "adam")
    compiled = not config.get("eager", False)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}: {', '.join(OPTIMIZERS)}")
    with _SEEDING:      # the global generator: a worker running several threads stays deterministic
        jitgrad.manual_seed(seed)
        data, eval_X, eval_y, predict = _task_data(task, seed, dtype)
        model = _task_model(task, hidden, dtype)
    shape = (task, hidden, str(dtype), optimizer)
    trainer = _TRAINERS.pop(shape, None) if compiled else None    # this thread's until it is done
    if trainer is None:
        trainer = _Trainer(task, model, optimizer, lr, compiled)
    else:
        trainer.restart(model, lr)
    step = trainer.step
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _ = step(*data)
    seconds = time.perf_counter() - t0
    with jitgrad.no_grad():
        accuracy = float((predict(trainer.model(eval_X)._a) == eval_y).mean())
    if compiled:
        _TRAINERS[shape] = trainer
        while len(_TRAINERS) > _TRAINERS_KEPT:
            _TRAINERS.popitem(last=False)
    return {"loss": loss.item(), "accuracy": accuracy, "steps_per_s": steps / seconds if seconds else None}


def default_warmup():
    """Two compiled steps (the trace, which runs eagerly, and a replay) of each task with SGD and
    Adam in float64, as the sweep CLI trains: loads the interpreter's, the forward and the optimizer
    kernels from the Numba disk cache (compiles them if it is cold)."""
    for task in ("moons", "digits"):
        for optimizer in ("sgd", "adam"):
            train_mlp(dict(task=task, lr=0.01, hidden=4, seed=0, steps=2, optimizer=optimizer))


def grid(lrs, hiddens, seeds, steps, task="moons", optimizer="adam", eager=False):
    """The configurations of the CLI's grid, in lr, hidden, seed order."""
    extra = {"eager": True} if eager else {}
    return [dict(task=task, optimizer=optimizer, lr=lr, hidden=h, seed=s, steps=steps, **extra)
            for lr in lrs for h in hiddens for s in seeds]


def batch_size_arg(text):
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, not {text!r}")
    return n


# ---- python -m jitgrad sweep ----------------------------------------------------------------------
def float_list(text):
    return [float(v) for v in text.split(",") if v.strip()]


def int_list(text):
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m jitgrad sweep",
        description="Train the moons (or digits) MLP over a grid of learning rates, widths and seeds, one "
                    "Dask task per configuration, storing each result in SQLite as it finishes. "
                    "Re-running the same command skips what is stored.")
    p.add_argument("--lr", type=float_list, default=[0.01, 0.03, 0.1], help="learning rates, comma "
                   "separated (default: 0.01,0.03,0.1)")
    p.add_argument("--hidden", type=int_list, default=[8, 16, 32], help="hidden widths, comma separated "
                   "(default: 8,16,32)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per configuration (default: 5)")
    p.add_argument("--steps", type=int, default=500, help="full-batch training steps (default: 500)")
    p.add_argument("--task", choices=["moons", "digits"], default="moons", help="moons: micrograd's "
                   "2-H-H-1 hinge-loss MLP; digits: 64-H-H-10 cross-entropy MLP (default: moons)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"], default="adam",
                   help="optimizer (default: adam)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes, one thread each "
                   "(default: one per core); ignored with --scheduler")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. "
                   "tcp://HOST:8786 (started with `dask scheduler` and `dask worker`)")
    p.add_argument("--connect-timeout", type=float, default=10, metavar="SECONDS",
                   help="give up on an unreachable --scheduler after this long (default: 10)")
    p.add_argument("--store", default="sweep.db", help="SQLite file of the results (default: sweep.db)")
    p.add_argument("--batch-size", type=batch_size_arg, default="auto", metavar="N",
                   help="configurations per Dask task (default: auto, from 16 down to 1 as the "
                        "sweep nears its end)")
    p.add_argument("--eager", action="store_true", help="train op by op instead of through "
                   "jitgrad.compile (same results; stored under their own keys)")
    p.add_argument("--plot", metavar="PATH", help="save accuracy against the grid to this image "
                   "(needs matplotlib)")
    p.add_argument("--top", type=int, default=10, help="rows of the table of the best (default: 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def summarize(records):
    """Per (lr, hidden): mean and std of the accuracy and mean loss over seeds, best first."""
    groups = {}
    for r in records:
        if r["status"] == "ok":
            p = r["params"]
            groups.setdefault((p["lr"], p["hidden"]), []).append(r)
    rows = []
    for (lr, hidden), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs])
        rows.append(dict(lr=lr, hidden=hidden, seeds=len(rs), accuracy=float(acc.mean()),
                         accuracy_std=float(acc.std()), loss=float(np.mean([r["loss"] for r in rs])),
                         steps_per_s=float(np.mean([r["steps_per_s"] or math.nan for r in rs]))))
    rows.sort(key=lambda r: (-r["accuracy"], r["loss"]))
    return rows


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for hidden in sorted({r["hidden"] for r in rows}):
        rs = sorted((r for r in rows if r["hidden"] == hidden), key=lambda r: r["lr"])
        ax.errorbar([r["lr"] for r in rs], [r["accuracy"] for r in rs],
                    yerr=[r["accuracy_std"] for r in rs], marker="o", capsize=3, label=f"hidden {hidden}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None, out=sys.stdout):
    args = parse_args(argv)
    if args.seeds < 1 or args.steps < 1 or not args.lr or not args.hidden or min(args.hidden) < 1:
        print("seeds, steps and hidden must be positive, and lr and hidden not empty", file=sys.stderr)
        return 2
    configs = grid(args.lr, args.hidden, range(args.seeds), args.steps, args.task, args.optimizer,
                   args.eager)
    where = args.scheduler or f"a local cluster of {args.workers or os.cpu_count()} worker processes"
    mode = "eager" if args.eager else "compiled"
    print(f"jitgrad sweep: {len(configs)} {args.task} trainings ({len(args.lr)} lr x {len(args.hidden)} "
          f"hidden x {args.seeds} seeds, {args.steps} steps, {args.optimizer}, {mode}) on {where}; "
          f"results in {args.store}", file=out)
    t0 = time.perf_counter()
    try:
        records = sweep(train_mlp, configs, client=args.scheduler, store=args.store,
                        progress=not args.no_progress, workers=args.workers,
                        connect_timeout=args.connect_timeout, batch_size=args.batch_size)
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        with Store(args.store) as db:
            n = len(db.done_keys() & {config_key(c) for c in configs})
        print(f"\ninterrupted: {n} of {len(configs)} stored in {args.store}; run the same command "
              "again to train the rest", file=sys.stderr)
        return 130
    ran = sum(not r["resumed"] for r in records)
    failed = [r for r in records if r["status"] == "failed"]
    print(f"{ran} trained now, {len(records) - ran} already stored, {len(failed)} failed "
          f"({time.perf_counter() - t0:.1f} s)", file=out)
    for r in failed[:5]:
        print(f"  failed {r['params']}: {r['error'].splitlines()[0]}", file=out)
    rows = summarize(records)
    print(f"\nbest configurations (mean over seeds):\n{'lr':>8} {'hidden':>6} {'seeds':>5} "
          f"{'accuracy':>15} {'loss':>8} {'steps/s':>8}", file=out)
    for r in rows[:args.top]:
        print(f"{r['lr']:>8g} {r['hidden']:>6d} {r['seeds']:>5d} {r['accuracy']:>8.1%} ± "
              f"{r['accuracy_std']:>4.1%} {r['loss']:>8.4f} {r['steps_per_s']:>8,.0f}", file=out)
    if args.plot and rows:
        try:
            plot(rows, args.plot, f"{args.task}: {args.steps} steps, {args.optimizer}")
            print(f"saved accuracy against the grid to {args.plot}", file=out)
        except ImportError:
            print("--plot needs matplotlib: pip install 'jitgrad[plot]'", file=sys.stderr)
            return 1
    return 1 if failed else 0
