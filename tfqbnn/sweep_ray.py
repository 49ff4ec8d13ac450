"""`tfqbnn-sweep --backend ray`: the sweep's cells as Ray tasks, on this machine or on any Ray cluster.

Each stage-1 pretraining (one per seed, activation and architecture) is a task, and the cells that train
from it are tasks that take its result as an argument, so Ray starts them only after it. A task runs the
sequential sweep's own functions (`tfqbnn.training.pretrain`, `tfqbnn.cells.run_cell`) in a scratch folder
on its node and returns that folder's files; the driver writes them into ``out`` (each folder appears by one
rename: complete or not at all). No filesystem is shared with the workers: the data reach them once through
Ray's object store, the code through the job's ``runtime_env`` (``py_modules``).

A task whose worker dies (SIGKILL, a lost node) is retried from its start (``max_retries``); a task that
raises is not retried: its cell is reported with the error and the other cells go on. Ray is imported
only by this module, so nothing else needs it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from tfqbnn import rundir
from tfqbnn.cells import PRETRAIN, cell_dir, plan, pretrain_folder, run_cell, run_config, sweep_fingerprint


@dataclasses.dataclass
class RayOptions:
    """Where and how the tasks run.

    Attributes:
        address: None starts a local Ray with this machine's CPUs and GPUs; ``"auto"`` joins the cluster
            this machine is a node of; ``"ray://HOST:PORT"`` a remote cluster through Ray Client.
        cpus_per_cell / gpus_per_cell: what each task (a pretraining or a cell) reserves.
        resources: custom resources each task reserves, e.g. ``{"gpu-node": 1}`` to place the tasks on the
            nodes started with that resource.
        max_concurrent: tasks submitted at once (None: as many as the cluster's resources hold at the start).
        max_retries: restarts of a task whose worker process died.
        scratch: a folder on each worker node for the tasks' scratch folders (None: the worker's temp dir).
        init: more keyword arguments of `ray.init` (e.g. ``num_cpus``, ``object_store_memory``).
        progress: show the progress bar (cells done, running, failed, ETA).
    """

    address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    resources: dict = dataclasses.field(default_factory=dict)
    max_concurrent: int | None = None
    max_retries: int = 3
    scratch: str | None = None
    init: dict = dataclasses.field(default_factory=dict)
    progress: bool = True

    def __post_init__(self):
        for name in ("cpus_per_cell", "gpus_per_cell", "max_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0; received {getattr(self, name)!r}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"`max_concurrent` must be None or >= 1; received {self.max_concurrent!r}")


# ---- on the workers ----------------------------------------------------------------------------------

def _read_tree(folder):
    """{relative path: bytes} of every file below ``folder`` but run locks and temporary files."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != rundir.LOCK and not rundir.is_temp_name(p.name)}


def _write_tree(folder, files):
    for rel, data in files.items():
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            raise ValueError(f"a task returned the file name {rel!r}, which is not a path inside its folder")
        p = Path(folder, *parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _scratch(base, token, name):
    """A fresh scratch folder for one task; returns it and the attempt number on this node.

    A worker killed mid-task leaves its folder behind: the retry counts it and starts afresh.
    """
    d = Path(base or tempfile.gettempdir()) / f"tfqbnn-sweep-{token}" / name
    attempt = 1
    try:
        attempt += json.loads((d / "task.json").read_text())["attempt"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    rundir.write_json(d / "task.json", {"pid": os.getpid(), "attempt": attempt})
    return d, attempt


def _use_profile(profile):
    """The driver's profile, by name when it has one (the name is part of every fingerprint)."""
    from tfqbnn import training

    name, prof = profile
    if name is None:
        return prof
    if training.PROFILES.get(name) != prof:
        training.PROFILES[name] = prof  # the driver's definition of the name decides the runs
    return name


def _result(folder, attempt, **extra):
    import ray

    return {"files": _read_tree(folder), "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "attempt": attempt, **extra}


def _pretrain_task(cell, seed, profile, data, token, scratch):
    from tfqbnn import training

    profile = _use_profile(profile)
    name = pretrain_folder("", cell, seed, profile, data).name
    root, attempt = _scratch(scratch, token, f"{PRETRAIN}-{name}")
    try:
        folder = pretrain_folder(root, cell, seed, profile, data)
        training.pretrain(data, folder, config=run_config(cell, seed, profile), verbose=0)
        return _result(folder, attempt, name=name)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _cell_task(cell, seed, profile, num_samples, data, pretrained, token, scratch):
    profile = _use_profile(profile)
    root, attempt = _scratch(scratch, token, f"{cell.name}-s{seed}")
    try:
        if pretrained is not None:
            _write_tree(root / PRETRAIN / pretrained["name"], pretrained["files"])
        run_cell(cell, seed, data, root, profile, num_samples)
        return _result(cell_dir(root, cell, seed), attempt)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- on the driver -----------------------------------------------------------------------------------

def install_tree(dest, files):
    """Writes ``files`` as the folder ``dest`` by one rename (an unfinished ``dest`` is replaced)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*-*"):  # left by a driver killed while installing
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink()
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.incoming-", dir=dest.parent))
    try:
        _write_tree(tmp, files)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.replaced-{secrets.token_hex(4)}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only when the install failed: it was renamed otherwise


def _pretrain_done(folder):
    m = rundir.RunDir(folder, "pretrain", {}, ()).read_manifest() if folder.is_dir() else None
    return bool(m) and m.get("status") == "done" and (folder / "model.keras").is_file()


def _placement(res):
    return {"node": res["node"], "pid": res["pid"], "attempt": res["attempt"]}


def _error_text(e, limit=400):
    cause = getattr(e, "cause", None)  # RayTaskError: the task's own exception
    e = cause if isinstance(cause, BaseException) else e
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _connect(opts):
    """ray.init unless Ray is initialised already (its caller then gives the job's runtime_env); returns
    whether this call connected."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    kw = dict(opts.init)
    env = _runtime_env()
    mine = kw.pop("runtime_env", None) or {}
    kw["runtime_env"] = {**mine, "py_modules": [*mine.get("py_modules", []), *env["py_modules"]],
                         "env_vars": {**env["env_vars"], **mine.get("env_vars", {})}}
    if opts.address:
        kw["address"] = opts.address
    else:
        kw.setdefault("include_dashboard", False)
    kw.setdefault("log_to_driver", False)  # the tasks' TensorFlow chatter; their errors come back as exceptions
    ray.init(**kw)
    return True


def _runtime_env():
    """The job's environment: this copy's packages (tfqbnn, the qbnn_safeio guards it imports and the tflite_export
    its cells may call; a checkout or an installed copy) uploaded to every worker."""
    import qbnn_safeio
    import tflite_export
    import tfqbnn

    env = {k: os.environ[k] for k in ("TF_CPP_MIN_LOG_LEVEL", "RAY_USAGE_STATS_ENABLED") if k in os.environ}
    return {"py_modules": [qbnn_safeio, tfqbnn, tflite_export], "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", **env}}


def _slots(opts):
    """How many tasks the cluster's resources hold at once."""
    import ray

    have = ray.cluster_resources()
    need = {"CPU": opts.cpus_per_cell, "GPU": opts.gpus_per_cell, **opts.resources}
    fits = [int(have.get(k, 0) // v) for k, v in need.items() if v]
    return max(1, min(fits)) if fits else max(1, int(have.get("CPU", 1)))


def run_cells(out_root, cells, seeds, data, profile, num_samples=None, options=None):
    """Runs the unfinished cells of ``out_root`` as Ray tasks and writes their folders.

    Returns:
        (rows of the finished cells in table order, failures ``[{"cell", "seed", "error"}]``, info for
        sweep.json: the node and worker process each task of this run finished on, and on which attempt).
    """
    import ray

    from tfqbnn import training

    opts = options or RayOptions()
    out_root = Path(out_root)
    done, todo = plan(out_root, cells, seeds)
    results, failures, placed = dict(done), [], {}
    prof_arg = (profile, training.get_profile(profile)) if isinstance(profile, str) else (None, profile)
    token = rundir.digest([str(out_root.resolve()), sweep_fingerprint(profile, num_samples, data)])
    started = _connect(opts) if todo else False
    try:
        if todo:
            _schedule(todo, out_root, data, prof_arg, num_samples, opts, token, results, failures, placed)
    finally:
        if started:
            ray.shutdown()
    rows = [results[(c.name, s)] for s in seeds for c in cells if (c.name, s) in results]
    info = {"address": opts.address or "local", "tasks": placed}
    return rows, failures, info


def _schedule(todo, out_root, data, prof_arg, num_samples, opts, token, results, failures, placed):
    import ray
    from tqdm import tqdm

    profile = prof_arg[0] if prof_arg[0] is not None else prof_arg[1]
    task_opts = dict(num_cpus=opts.cpus_per_cell, num_gpus=opts.gpus_per_cell, resources=dict(opts.resources),
                     max_retries=opts.max_retries, retry_exceptions=False)
    pretrain_remote = ray.remote(_pretrain_task).options(**task_opts)
    cell_remote = ray.remote(_cell_task).options(**task_opts)
    data_ref = ray.put(data)
    limit = opts.max_concurrent or _slots(opts)

    order = {(c.name, s): i for i, (c, s) in enumerate(todo)}
    queue = []  # (order, kind, cell, seed, pretrained ref or None, pretrain folder name)
    waiting = {}  # pretrain folder name -> cells that train from it
    pretrained = {}  # pretrain folder name -> ObjectRef of its files
    for cell, seed in todo:
        folder = pretrain_folder(out_root, cell, seed, profile, data)
        if folder is None:
            queue.append((order[(cell.name, seed)], "cell", cell, seed, None, None))
            continue
        if folder.name not in pretrained and _pretrain_done(folder):
            pretrained[folder.name] = ray.put({"name": folder.name, "files": _read_tree(folder)})
        if folder.name in pretrained:
            queue.append((order[(cell.name, seed)], "cell", cell, seed, pretrained[folder.name], folder.name))
        else:
            if folder.name not in waiting:
                queue.append((-1, "pretrain", cell, seed, None, folder.name))
            waiting.setdefault(folder.name, []).append((cell, seed))

    in_flight = {}
    bar = tqdm(total=len(todo), desc="sweep cells [ray]", unit="cell", disable=not opts.progress)

    def fail(cell, seed, error):
        failures.append({"cell": cell.name, "seed": seed, "error": error})
        bar.write(f"sweep: {cell.name} s{seed} failed: {error}")
        bar.update(1)

    try:
        while queue or in_flight:
            queue.sort(key=lambda j: j[0])
            while queue and len(in_flight) < limit:
                job = queue.pop(0)
                _, kind, cell, seed, ref, name = job
                if kind == "pretrain":
                    task = pretrain_remote.remote(cell, seed, prof_arg, data_ref, token, opts.scratch)
                else:
                    task = cell_remote.remote(cell, seed, prof_arg, num_samples, data_ref, ref, token, opts.scratch)
                in_flight[task] = job
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for task in ready:
                _, kind, cell, seed, _, name = in_flight.pop(task)
                try:
                    res = ray.get(task)
                except Exception as e:  # the task raised, or its worker died max_retries + 1 times
                    error = _error_text(e)
                    if kind == "pretrain":
                        for c, s in waiting.pop(name):
                            fail(c, s, f"pretraining {name} failed: {error}")
                    else:
                        fail(cell, seed, error)
                    continue
                if kind == "pretrain":
                    install_tree(out_root / PRETRAIN / name, res["files"])
                    placed[f"{PRETRAIN}/{name}"] = _placement(res)
                    for c, s in waiting.pop(name):
                        queue.append((order[(c.name, s)], "cell", c, s, task, name))
                else:
                    install_tree(cell_dir(out_root, cell, seed), res["files"])
                    results[(cell.name, seed)] = json.loads(res["files"]["metrics.json"])
                    placed[f"{cell.name}/s{seed}"] = _placement(res)
                    bar.update(1)
            running = sum(1 for j in in_flight.values() if j[1] == "cell")
            bar.set_postfix_str(f"running {running}, pretraining {len(in_flight) - running}, "
                                f"failed {len(failures)}", refresh=False)
    finally:
        bar.close()
