"""Sweeps on Dask (jitgrad.distributed): a real LocalCluster of 2 single-threaded worker processes.

Each test tags its configurations (``tag`` is ignored by train_mlp) so its task keys are its own on
the shared cluster. Every wait is bounded: sweeps get ``timeout=``, subprocesses ``timeout=``."""
import os
import itertools
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
from distributed import Client, LocalCluster  # noqa: E402

import jitgrad.distributed as distributed  # noqa: E402
from jitgrad.distributed import Store, batch_sizes, config_key, grid, sweep, train_mlp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1",
           PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
TIMEOUT = 240
GRID = grid([0.01, 0.1], [4, 8, 16], [0, 1], steps=40)      # 12 configurations


def tagged(tag, configs=GRID):
    return [dict(c, tag=tag) for c in configs]


@pytest.fixture(scope="module")
def serial():
    """The reference: every configuration trained one after another in this process."""
    return {config_key(c): train_mlp(c) for c in GRID}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=TIMEOUT)
        yield c


def assert_equal_to_serial(records, serial):
    assert len(records) == len(GRID)
    for rec in records:
        ref = serial[config_key({k: v for k, v in rec["params"].items() if k != "tag"})]
        assert rec["status"] == "ok", rec["error"]
        assert (rec["loss"], rec["accuracy"]) == (ref["loss"], ref["accuracy"]), rec["params"]


def stored_rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, status FROM runs").fetchall()


def test_config_key_is_stable_and_order_free():
    a = dict(lr=0.1, hidden=8, seed=3)
    assert config_key(a) == config_key(dict(seed=3, hidden=8, lr=0.1))
    assert config_key(a) != config_key(dict(a, seed=4))
    assert len(config_key(a)) == 16


def test_sweep_equals_serial(client, serial, tmp_path):
    store = tmp_path / "s.db"
    records = sweep(train_mlp, tagged("equal"), client=client, store=store, progress=False,
                    timeout=TIMEOUT)
    assert_equal_to_serial(records, serial)
    assert not any(r["resumed"] for r in records)
    assert len(stored_rows(store)) == len(GRID)
    assert all(r["worker"].startswith("tcp://") and r["seconds"] > 0 and r["steps_per_s"] > 0
               for r in records)
    # every worker runs one BLAS/OpenMP thread
    assert set(client.run(lambda: os.environ["OMP_NUM_THREADS"]).values()) == {"1"}


class Stop(Exception):
    pass


def train_slowly_after_seed_0(config):
    if config["seed"]:
        time.sleep(1.0)
    return train_mlp(config)


@pytest.mark.parametrize("batch_size", [1, "auto"])
def test_interrupted_sweep_resumes_with_the_missing_half(client, serial, tmp_path, batch_size):
    # seed 0 first and fast, seed 1 a second slower: the sweep stops after the fast half, before
    # any slow result can arrive with the last fast one (the results that arrive together are
    # stored together, then on_result sees them one by one)
    cloudpickle = pytest.importorskip("cloudpickle")
    store = tmp_path / "s.db"
    configs = sorted(tagged(f"resume{batch_size}"), key=lambda c: c["seed"])
    half = {config_key(c) for c in configs if c["seed"] == 0}
    if batch_size == "auto":     # the tasks of seed 0 first
        assert len(half) in itertools.accumulate(batch_sizes(len(configs), 2))
    seen = []

    def stop_at_half(rec):
        seen.append(rec["key"])
        if len(seen) == len(configs) // 2:
            raise Stop
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with pytest.raises(Stop):
            sweep(train_slowly_after_seed_0, configs, client=client, store=store, progress=False,
                  on_result=stop_at_half, timeout=TIMEOUT, batch_size=batch_size)
        first = {k for k, status in stored_rows(store) if status == "ok"}
        assert first == set(seen) == half

        ran = []
        records = sweep(train_slowly_after_seed_0, configs, client=client, store=store,
                        progress=False, on_result=lambda rec: ran.append(rec["key"]), timeout=TIMEOUT,
                        batch_size=batch_size)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert sorted(ran) == sorted({config_key(c) for c in configs} - half)
    assert {r["key"] for r in records if r["resumed"]} == half
    assert_equal_to_serial(records, serial)
    # a third run has nothing to do and needs no cluster at all
    again = sweep(train_slowly_after_seed_0, configs, client="tcp://127.0.0.1:1", store=store,
                  progress=False)
    assert all(r["resumed"] for r in again)


def test_batched_sweep_equals_serial_and_keeps_failures_per_configuration(client, serial, tmp_path):
    configs = tagged("batched")
    configs[6] = dict(configs[6], task="nope")             # fails inside the second batch
    records = sweep(train_mlp, configs, client=client, store=tmp_path / "s.db", progress=False,
                    timeout=TIMEOUT, batch_size=5)
    assert [r["status"] for r in records] == ["ok"] * 6 + ["failed"] + ["ok"] * 5
    assert records[6]["error"].startswith("ValueError: unknown task 'nope'")
    good = records[:6] + records[7:]
    for rec in good:
        ref = serial[config_key({k: v for k, v in rec["params"].items() if k != "tag"})]
        assert (rec["loss"], rec["accuracy"]) == (ref["loss"], ref["accuracy"]), rec["params"]
    # a batch is one task: its configurations ran one after another on one worker
    for batch in (records[0:5], records[5:10], records[10:12]):
        assert len({r["worker"] for r in batch}) == 1
        starts = [r["started"] for r in batch]
        assert starts == sorted(starts)


def test_batch_sizes():
    for n, threads in [(64, 2), (64, 1), (12, 2), (1, 2), (1000, 8), (5, 16)]:
        sizes = batch_sizes(n, threads)
        assert sum(sizes) == n and all(1 <= k <= distributed.MAX_BATCH for k in sizes)
        assert sizes == sorted(sizes, reverse=True) and (sizes[-1] == 1 or threads == 1)
    assert batch_sizes(64, 2) == [16, 16, 16, 8, 4, 2, 1, 1]   # ceil(64 / 2) capped, ceil(16 / 2), ...
    assert batch_sizes(64, 1) == [16, 16, 16, 16]
    assert batch_sizes(0, 2) == []
    assert batch_sizes(10, 2, 3) == [3, 3, 3, 1] and batch_sizes(6, 2, 3) == [3, 3]
    for bad in (0, -1, 2.0, True, "many"):
        with pytest.raises(ValueError, match="batch_size must be a positive int or \"auto\""):
            sweep(train_mlp, GRID[:1], store=":memory:", batch_size=bad)


def count_warmup():
    os.environ["JITGRAD_TEST_WARMUPS"] = str(int(os.environ.get("JITGRAD_TEST_WARMUPS", "0")) + 1)


def test_warmup_runs_once_per_worker_process(client, tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        for i in range(2):
            sweep(train_mlp, tagged(f"warm{i}", GRID[:2]), client=client, store=tmp_path / "s.db",
                  progress=False, warmup=count_warmup, timeout=TIMEOUT)
        # (another client registers again; each worker process still warms up once)
        with Client(client.scheduler.address, set_as_default=False) as other:
            sweep(train_mlp, tagged("warm2", GRID[:2]), client=other, store=tmp_path / "s.db",
                  progress=False, warmup=count_warmup, timeout=TIMEOUT)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert set(client.run(lambda: os.environ.get("JITGRAD_TEST_WARMUPS")).values()) == {"1"}


def test_train_mlp_in_threads_equals_serial():
    # a Dask worker may run several threads: each training seeds, builds and trains its own model
    # (a cached compiled step belongs to one training at a time)
    configs = grid([0.01, 0.1], [4, 8], [0, 1, 2], steps=20)
    expected = [train_mlp(c) for c in configs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(train_mlp, configs * 2))
    for c, ref, a, b in zip(configs, expected, got[:len(configs)], got[len(configs):]):
        assert (a["loss"], a["accuracy"]) == (b["loss"], b["accuracy"]) == (ref["loss"], ref["accuracy"]), c


def test_compiled_training_equals_eager():
    """train_mlp traces one step per model shape and process and reuses it for every later
    configuration of that shape: the results are the eager ones, bit for bit for moons; digits
    (cross-entropy's exp and log: numpy's eagerly, the C library's compiled) to the last bits."""
    import warnings
    configs = grid([0.01, 0.1], [4, 8], [0, 1], steps=30) + \
        grid([0.05], [8], [0, 1], steps=30, optimizer="sgd") + \
        grid([0.05], [4], [2], steps=30, optimizer="rmsprop")
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no fallback to eager ("runs eagerly: ...")
        compiled = [train_mlp(c) for c in configs]
    for c, got in zip(configs, compiled):
        ref = train_mlp(dict(c, eager=True))
        assert (got["loss"], got["accuracy"]) == (ref["loss"], ref["accuracy"]), c
    for (task, hidden, _, optimizer), trainer in distributed._TRAINERS.items():
        if task == "moons" and hidden in (4, 8):
            assert len(trainer.step.traces) == 1, (hidden, optimizer)
    digits = grid([0.01], [8], [0, 1], steps=20, task="digits")
    for c in digits:
        got, ref = train_mlp(c), train_mlp(dict(c, eager=True))
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-12, abs=0)
        assert got["accuracy"] == ref["accuracy"]
    # the eager steps/s is a different measurement, not a different training
    assert all(r["steps_per_s"] > 0 for r in compiled)


def test_sweep_by_scheduler_address(client, serial, tmp_path):
    # what `--scheduler tcp://HOST:8786` does: a client of its own to an existing cluster
    records = sweep(train_mlp, tagged("address"), client=client.scheduler.address,
                    store=tmp_path / "s.db", progress=False, timeout=TIMEOUT)
    assert_equal_to_serial(records, serial)


def test_digits_task(client, tmp_path):
    configs = grid([0.01], [8], [0, 1], steps=20, task="digits", optimizer="sgd")
    records = sweep(train_mlp, configs, client=client, store=tmp_path / "s.db", progress=False,
                    timeout=TIMEOUT)
    for rec, config in zip(records, configs):
        ref = train_mlp(config)
        assert rec["status"] == "ok" and (rec["loss"], rec["accuracy"]) == (ref["loss"], ref["accuracy"])
        assert 0 <= rec["accuracy"] <= 1


def test_two_sweeps_at_once_on_one_store(client, serial, tmp_path):
    store = tmp_path / "s.db"
    configs = tagged("both")
    halves = [configs[:8], configs[4:]]           # configurations 4..7 are in both sweeps
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(sweep, train_mlp, half, client=client, store=store, progress=False,
                            timeout=TIMEOUT) for half in halves]
        done = [r.result(timeout=TIMEOUT) for r in runs]
    assert [len(d) for d in done] == [8, 8]
    with Store(store) as db:
        assert_equal_to_serial(db.records(), serial)
    assert sorted(k for k, _ in stored_rows(store)) == sorted({config_key(c) for c in configs})


def test_failing_configuration_is_stored_as_failed_and_the_sweep_goes_on(client, tmp_path):
    store = tmp_path / "s.db"
    configs = tagged("fail", GRID[:3]) + [dict(GRID[0], task="nope", tag="fail")]
    records = sweep(train_mlp, configs, client=client, store=store, progress=False, timeout=TIMEOUT)
    assert [r["status"] for r in records] == ["ok", "ok", "ok", "failed"]
    assert records[3]["error"].startswith("ValueError: unknown task 'nope'")
    assert records[3]["loss"] is None
    # a failed configuration is tried again on the next run (and fails again, replacing its row)
    ran = []
    sweep(train_mlp, configs, client=client, store=store, progress=False,
          on_result=lambda rec: ran.append(rec["key"]), timeout=TIMEOUT)
    assert ran == [records[3]["key"]]
    assert len(stored_rows(store)) == 4


def train_or_kill_worker(config):
    if config.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    return train_mlp(config)


def test_task_that_keeps_killing_its_worker_is_stored_as_failed(client, tmp_path):
    # workers unpickle the function by value: they cannot import this test module
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def set_allowed_failures(n, dask_scheduler=None):
        old, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, n
        return old
    configs = tagged("crash", GRID[:2]) + [dict(GRID[0], tag="crash", crash=True)]
    # the good configurations first: with allowed_failures=0 Dask also fails any task that was
    # queued on the worker the crash killed, so running them beside it would make this test racy
    sweep(train_or_kill_worker, configs[:2], client=client, store=tmp_path / "s.db",
          progress=False, timeout=TIMEOUT)
    old = client.run_on_scheduler(set_allowed_failures, 0)
    try:
        records = sweep(train_or_kill_worker, configs, client=client, store=tmp_path / "s.db",
                        progress=False, timeout=TIMEOUT)
    finally:
        client.run_on_scheduler(set_allowed_failures, old)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    assert records[2]["error"].startswith("KilledWorker")
    client.wait_for_workers(2, timeout=TIMEOUT)


def steps_on(model, opt, X, n):
    for _ in range(n):
        opt.zero_grad()
        model(X).pow(2).mean().backward()
        opt.step()
    return model, opt


def test_models_and_optimizers_travel_to_workers_and_back(client):
    import jitgrad
    cloudpickle = pytest.importorskip("cloudpickle")
    jitgrad.manual_seed(0)
    model = jitgrad.nn.Sequential(jitgrad.nn.Linear(3, 4), jitgrad.nn.Tanh(), jitgrad.nn.Linear(4, 1))
    opt = jitgrad.optim.Adam(model.parameters(), lr=0.1)
    X = jitgrad.randn(8, 3)
    steps_on(model, opt, X, 2)              # optimizer state to carry over
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        remote_model, remote_opt = client.submit(steps_on, model, opt, X, 3, pure=False).result(
            timeout=TIMEOUT)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    steps_on(model, opt, X, 3)
    for (name, a), b in zip(model.state_dict().items(), remote_model.state_dict().values()):
        assert a.numpy().tobytes() == b.numpy().tobytes(), name
    # Dask deserializes the returned tuple's items one by one, so the optimizer that comes back
    # holds copies of the model's parameters: state dicts are how a trained pair comes home
    local = jitgrad.optim.Adam(model.parameters(), lr=0.1)
    local.load_state_dict(remote_opt.state_dict())
    assert float(local.state_dict()["state"][0]["step"]) == 5
    for key in ("exp_avg", "exp_avg_sq"):
        assert all(np.array_equal(np.asarray(local.state[p][key]), np.asarray(opt.state[p][key]))
                   for p in model.parameters())


def test_unreachable_scheduler_fails_fast_with_a_clear_message(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(ConnectionError, match=f"cannot reach the Dask scheduler at {address} within 2 s"):
        sweep(train_mlp, GRID[:1], client=address, store=tmp_path / "s.db", progress=False,
              connect_timeout=2)


WRITER = textwrap.dedent("""
    import sys
    from jitgrad.distributed import Store
    first, count = int(sys.argv[2]), int(sys.argv[3])
    with Store(sys.argv[1]) as db:
        for i in range(first, first + count):
            params = {"i": i}
            db.put(dict(key=f"k{i:05d}", params=params, status="failed", error="first try"))
            db.put(dict(key=f"k{i:05d}", params=params, seed=i, status="ok", loss=float(i),
                        accuracy=0.5, result={"loss": float(i)}))
""")


def test_store_survives_two_concurrent_writers(tmp_path):
    store = tmp_path / "s.db"
    Store(store).close()
    # overlapping ranges: keys 200..399 are written by both processes at the same time
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(first), "400"], env=ENV,
                              stderr=subprocess.PIPE, text=True) for first in (0, 200)]
    for p in procs:
        _, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT key, status, loss, seed, error FROM runs ORDER BY key").fetchall()
    assert rows == [(f"k{i:05d}", "ok", float(i), i, None) for i in range(600)]
    with Store(store) as db:
        assert db.records([f"k{i:05d}" for i in (5, 300)])[1]["result"] == {"loss": 300.0}


def test_killed_worker_loses_nothing(client, serial, tmp_path):
    store = tmp_path / "s.db"
    configs = [dict(c, steps=300) for c in GRID]
    reference = {config_key(c): train_mlp(c) for c in configs}
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def kill_once(rec):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
    records = sweep(train_mlp, [dict(c, tag="kill") for c in configs], client=client, store=store,
                    progress=False, on_result=kill_once, timeout=TIMEOUT)
    assert killed
    assert sorted(k for k, _ in stored_rows(store)) == sorted(r["key"] for r in records)
    assert len(records) == len(configs) and all(r["status"] == "ok" for r in records)
    for rec in records:
        ref = reference[config_key({k: v for k, v in rec["params"].items() if k != "tag"})]
        assert (rec["loss"], rec["accuracy"]) == (ref["loss"], ref["accuracy"])
    # the nanny replaced the killed worker process
    client.wait_for_workers(2, timeout=TIMEOUT)
    assert victim not in client.run(os.getpid).values()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "jitgrad", "sweep", *args], env=ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_cli_sweep_table_plot_and_resume(tmp_path):
    pytest.importorskip("matplotlib")
    store, png = tmp_path / "cli.db", tmp_path / "cli.png"
    args = ["--lr", "0.05", "--hidden", "4,8", "--seeds", "2", "--steps", "20", "--workers", "1",
            "--store", str(store), "--no-progress", "--batch-size", "3"]
    r = run_cli(*args, "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert "4 trained now, 0 already stored, 0 failed" in r.stdout
    assert "best configurations" in r.stdout and png.stat().st_size > 0
    assert len(stored_rows(store)) == 4
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "0 trained now, 4 already stored" in r.stdout


def test_cli_unreachable_scheduler_and_help(tmp_path):
    r = run_cli("--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "2",
                "--store", str(tmp_path / "s.db"), "--seeds", "1", "--lr", "0.1", "--hidden", "4")
    assert r.returncode == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in r.stderr
    r = run_cli("--help")
    assert r.returncode == 0 and "--scheduler" in r.stdout and "--batch-size" in r.stdout
    r = run_cli("--batch-size", "0")
    assert r.returncode == 2 and "--batch-size: must be a positive integer or auto, not '0'" in r.stderr


def test_many_sweeps_opening_one_new_store_at_once(tmp_path):
    # the first opener switches the new file to WAL while the others open it and write: they must
    # wait for it, not fail with "database is locked"
    for attempt in range(15):
        store = tmp_path / f"s{attempt}.db"
        start = threading.Barrier(4)

        def open_and_write(i):
            start.wait()
            with Store(store) as db:
                for k in range(20):
                    db.put(dict(key=f"k{i}-{k}", params={"i": i}, seed=i, status="ok", loss=float(k)))
                    db.done_keys()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(open_and_write, range(4)))
        with Store(store) as db:
            assert len(db.done_keys()) == 80
