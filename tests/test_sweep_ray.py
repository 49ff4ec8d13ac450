"""`--backend ray` on a tiny Dirty-MNIST: the same folders and metrics as the sequential sweep on a local Ray with
2 workers and on a two-node cluster on loopback, a worker SIGKILLed mid-cell, a cell that keeps failing."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tiny_runs import tiny_data, tiny_profile

# Offline and light, and every Ray address and listening socket on 127.0.0.1 (Ray's single-machine switch, read
# when ray is imported); with nothing reachable from outside, no token authentication (no token file written).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"
ray = pytest.importorskip("ray", reason="ray is not installed (make test installs it from requirements.lock)")
pytestmark = pytest.mark.slow

SEEDS = (0, 1)
OBJECT_STORE = 80 * 2**20


def _cells():
    from tfqbnn import sweep

    return [sweep.Cell("fp32", "fp32"), sweep.Cell("jq4", "jq4")]


def _ray_env(mp):
    from tfqbnn import training

    mp.setitem(training.PROFILES, "tiny", tiny_profile())


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The local backend's sweep: fp32 and jq4, seeds 0 and 1."""
    from tfqbnn import sweep

    out = tmp_path_factory.mktemp("sequential")
    with pytest.MonkeyPatch.context() as mp:
        _ray_env(mp)
        sweep.run_sweep(out, SEEDS, "tiny", _cells(), data=tiny_data(), num_samples=2)
    return out


@pytest.fixture
def ray_env(monkeypatch):
    _ray_env(monkeypatch)


@pytest.fixture
def ray_temp():
    """Ray's own session folder (short: it holds unix sockets), removed afterwards."""
    d = tempfile.mkdtemp(prefix="tfqbnn-ray-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _options(tmp_path, ray_temp, **kw):
    from tfqbnn.sweep_ray import RayOptions

    init = dict(num_cpus=2, object_store_memory=OBJECT_STORE, _temp_dir=ray_temp)
    return RayOptions(scratch=str(tmp_path / "scratch"), progress=False, init=init, **kw)


def _metrics(folder):
    m = json.loads((folder / "metrics.json").read_text())
    return {k: v for k, v in m.items() if not k.endswith("_seconds")}  # wall times differ


def _listing(folder):
    """Relative file names; TensorBoard event files (named by time, host and pid) counted per folder."""
    names = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        names.append(rel if "events.out.tfevents" not in p.name else f"{p.parent.relative_to(folder)}/<events>")
    return names


def _assert_same_cells(out, ref, cells, seeds):
    from tfqbnn import sweep

    for seed in seeds:
        for c in cells:
            got, want = sweep.cell_dir(out, c, seed), sweep.cell_dir(ref, c, seed)
            assert _metrics(got) == _metrics(want), (c.name, seed)
            assert _listing(got) == _listing(want), (c.name, seed)
            assert (got / "log.csv").read_text() == (want / "log.csv").read_text()
    for c in cells:
        assert sorted(p.name for p in (out / c.name).iterdir()) == [f"s{s}" for s in seeds]  # nothing half-installed


def test_local_ray_two_workers_matches_sequential_and_reports_a_failing_cell(sequential, tmp_path, ray_env,
                                                                            ray_temp):
    from tfqbnn import sweep

    out = tmp_path / "ray"
    broken = sweep.Cell("baseline-broken", None, baseline="no-such-baseline", group="baseline")
    with pytest.raises(sweep.CellsFailed) as failed:
        sweep.run_sweep(out, SEEDS, "tiny", [*_cells(), broken], data=tiny_data(), num_samples=2, backend="ray",
                        ray_options=_options(tmp_path, ray_temp))
    assert [(f["cell"], f["seed"]) for f in failed.value.failures] == [("baseline-broken", 0), ("baseline-broken", 1)]
    assert all("ValueError: Unknown baseline 'no-such-baseline'" in f["error"] for f in failed.value.failures)
    assert len(failed.value.rows) == 4  # the other cells finished
    _assert_same_cells(out, sequential, _cells(), SEEDS)
    assert sorted(p.name for p in (out / "_pretrain").iterdir()) == sorted(p.name for p in (sequential /
                                                                                            "_pretrain").iterdir())
    seq_rows = [r.split(",")[:-1] for r in (sequential / "table.csv").read_text().splitlines()]  # last: cell_seconds
    assert [r.split(",")[:-1] for r in (out / "table.csv").read_text().splitlines()] == seq_rows
    info = json.loads((out / "sweep.json").read_text())
    assert info["backend"] == "ray" and [f["cell"] for f in info["failed"]] == ["baseline-broken"] * 2
    tasks = info["ray"]["tasks"].values()
    assert len(tasks) == 6 and len({t["node"] for t in tasks}) == 1
    assert len({t["pid"] for t in tasks}) >= 2  # two workers shared the tasks
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # a rerun retries the failed cells
    assert not any((tmp_path / "scratch").rglob("*.json"))  # every task removed its scratch folder

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/s*/metrics.json")}
    rows, _ = sweep.run_sweep(out, SEEDS, "tiny", _cells(), data=tiny_data(), num_samples=2, backend="ray",
                              ray_options=_options(tmp_path, ray_temp))
    assert len(rows) == 4 and {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished cells skipped
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    assert json.loads((out / "sweep.json").read_text())["ray"]["tasks"] == {}


def test_worker_killed_mid_cell_is_retried_without_loss_or_duplicate(sequential, tmp_path, ray_env, ray_temp):
    from tfqbnn import sweep

    jq4 = _cells()[1]
    out, scratch = tmp_path / "ray", tmp_path / "scratch"
    killed, stop = {}, threading.Event()

    def kill_in_stage_2():
        while not stop.is_set():
            for task in scratch.glob("tfqbnn-sweep-*/jq4-s0/task.json"):
                # the cell's training folder exists on the worker: the cell is half done
                if (task.parent / "jq4" / "s0" / "run.json").exists():
                    info = json.loads(task.read_text())
                    os.kill(info["pid"], signal.SIGKILL)
                    killed.update(info, files=sorted(p.name for p in (task.parent / "jq4" / "s0").iterdir()))
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_in_stage_2, daemon=True)
    watcher.start()
    try:
        rows, _ = sweep.run_sweep(out, (0,), "tiny", [jq4], data=tiny_data(), num_samples=2, backend="ray",
                                  ray_options=_options(tmp_path, ray_temp, max_retries=2))
    finally:
        stop.set()
        watcher.join()
    assert killed.get("attempt") == 1 and "metrics.json" not in killed["files"]
    tasks = json.loads((out / "sweep.json").read_text())["ray"]["tasks"]
    assert tasks["jq4/s0"]["attempt"] == 2 and [r["cell"] for r in rows] == ["jq4"]
    _assert_same_cells(out, sequential, [jq4], (0,))
    assert [line.split(",")[0] for line in (out / "jq4" / "s0" / "log.csv").read_text().splitlines()] == [
        "epoch", "0", "1"]  # each epoch once: the retry started afresh, nothing of the killed attempt remains
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    assert not any(scratch.rglob("*.json"))


SECOND_NODE = """
import sys
import ray._private.services as services
from ray.scripts.scripts import main

# Ray resolves 127.0.0.1 to the machine's network address for a node that joins a cluster; keep loopback.
services.resolve_ip_for_localhost = lambda host: host
sys.argv = ["ray", *sys.argv[1:]]
main()
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_pids(temp):
    """Processes whose command line names the cluster's session folder (GCS, raylets, agents)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and temp in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@pytest.fixture
def two_nodes(tmp_path, ray_env, ray_temp):
    """`ray start --head` and a second `ray start --address=...` with the resource "side", both on 127.0.0.1;
    yields (address, the second node's id) and stops both nodes whatever happens."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--node-ip-address=127.0.0.1", f"--object-store-memory={OBJECT_STORE}"]
    ray_cli = [str(Path(sys.executable).with_name("ray"))]
    procs = []
    # Nodes as on other machines: no PYTHONPATH to this checkout (the tasks get tfqbnn from the job's py_modules), and
    # the CLI's single-machine switch off for the second node (it refuses to join a cluster otherwise).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        with open(tmp_path / "head.log", "w") as log:
            procs.append(subprocess.Popen(
                [*ray_cli, "start", "--head", *common, f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                 f"--temp-dir={ray_temp}", "--disable-usage-stats"],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        side = None
        deadline = time.monotonic() + 120
        while side is None and time.monotonic() < deadline:
            time.sleep(2)
            if len(procs) == 1 and "Ray runtime started" in (tmp_path / "head.log").read_text():
                with open(tmp_path / "side.log", "w") as log:
                    procs.append(subprocess.Popen(
                        [sys.executable, "-c", SECOND_NODE, "start", *common, f"--address={address}", "--num-cpus=2",
                         '--resources={"side": 2}'],
                        env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}, cwd=tmp_path, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True))
            if len(procs) == 2:
                side = _node_with(address, "side")
        assert side, (tmp_path / "head.log").read_text()[-2000:] + (tmp_path / "side.log").read_text()[-2000:]
        yield address, side
    finally:
        for p in procs:
            p.terminate()  # `ray start --block` stops its node's processes on SIGTERM
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        for _ in range(20):
            left = _cluster_pids(ray_temp)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.5)
        assert not _cluster_pids(ray_temp)


def _node_with(address, resource):
    """The id of the live node holding ``resource``, or None."""
    ray.init(address=address, log_to_driver=False)
    try:
        nodes = [n for n in ray.nodes() if n["Alive"] and resource in n["Resources"]]
        return nodes[0]["NodeID"] if nodes else None
    finally:
        ray.shutdown()


def test_two_node_cluster_cells_pinned_to_the_second_node(sequential, two_nodes, tmp_path):
    from tfqbnn import sweep
    from tfqbnn.sweep_ray import RayOptions

    address, side = two_nodes
    out = tmp_path / "ray"
    opts = RayOptions(address=address, resources={"side": 1}, scratch=str(tmp_path / "scratch"), progress=False)
    rows, _ = sweep.run_sweep(out, (1,), "tiny", _cells(), data=tiny_data(), num_samples=2, backend="ray",
                              ray_options=opts)
    assert [r["cell"] for r in rows] == ["fp32", "jq4"]
    tasks = json.loads((out / "sweep.json").read_text())["ray"]["tasks"]
    assert sorted(tasks) == sorted(["fp32/s1", "jq4/s1", *(f"_pretrain/{p.name}" for p in
                                                            (out / "_pretrain").iterdir())])
    assert len(tasks) == 3 and {t["node"] for t in tasks.values()} == {side}
    _assert_same_cells(out, sequential, _cells(), (1,))
    (pre,) = (out / "_pretrain").iterdir()
    assert _listing(pre) == _listing(sequential / "_pretrain" / pre.name)
