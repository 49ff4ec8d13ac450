"""Output folders the tools own: a fingerprint, a manifest of the tool's own files, atomic writes.

A tool that writes into ``DIR`` (train, evaluate, sweep) first writes ``DIR/run.json`` (atomically):
the kind of run, its fingerprint (everything that decides the result: strategy, bits, architecture,
profile, seed, data ...) and the names of the files the tool writes there.  Then:

* an empty or new ``DIR`` starts a run;
* a ``DIR`` holding the same fingerprint resumes it (or reports it finished);
* any other non-empty ``DIR`` is refused with a one-line error naming the directory and the first
  differing field, unless ``overwrite``; even then only the files the old manifest lists (and that
  this tool could have written) are deleted, never anything else, and a file of the user's that
  has a name the tool would write is refused, not replaced.

Scratch files (backups, checkpoints, partial files) live in ``DIR/tfqbnn-scratch/``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import time
from pathlib import Path

from qbnn_safeio import (  # noqa: F401
    atomic_path, is_temp_name, make_dir, open_temp, sha256_file, write_bytes, write_text)

MANIFEST = "run.json"
SCRATCH = "tfqbnn-scratch"
LOCK = ".tfqbnn.lock"  # held (flock) for the life of a run; holds the holder's PID
_LOCK_HEADER = "tfqbnn run lock, pid "
# What the tools write inside the folders they list (paths relative to the folder): only these are ever
# deleted from a listed folder, and the folder itself only once nothing else is left in it.
OWNED = {
    SCRATCH: ("backup/*", "checkpoint.keras", "model.partial.keras"),
    "tensorboard": ("train/events.out.tfevents.*", "validation/events.out.tfevents.*", "events.out.tfevents.*"),
}
# Inside any other listed folder (sweep cells, the shared stage-1 cache): the names the tools write there.
_OWNED_ANYWHERE = (MANIFEST, "model.keras", "train.json", "log.csv", "metrics.json", "per_image.npz",
                   "scatter.png", "samples_curve.md", "worker.log", "inputs.npz", "probs.npz",
                   "events.out.tfevents.*", "latest.weights.h5*", "training_metadata.json*", "checkpoint.keras",
                   "model.partial.keras")


class RunDirError(ValueError):
    """An output directory that the tool must not (or cannot) write into; one line, starts with the path."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = str(problem).replace("\n", " ")
        super().__init__(f"{self.path}: {self.problem}")


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def savez_compressed(path, **arrays):
    import numpy as np

    with atomic_path(path) as tmp, open_temp(tmp) as f:  # a file object: numpy would append ".npz" to a name
        np.savez_compressed(f, **arrays)


def digest(obj):
    """Short SHA-256 of a JSON-able object (key order independent)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def first_difference(old, new, prefix=""):
    """The first (dotted key, old value, new value) at which two JSON-like objects differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [*new, *(k for k in old if k not in new)]:  # the requested order: the main fields first
            d = first_difference(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
            if d:
                return d
        return None
    # JSON round trip: tuples become lists, so compare the serialised forms.
    if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
        return prefix.rstrip("."), old, new
    return None


class RunDir:
    """One output directory owned by one run of a tool.

    Args:
        path: the directory (``--out``).
        kind: what writes it, e.g. ``"train"``, ``"pretrain"``, ``"evaluate"``, ``"sweep"``.
        fingerprint: JSON-able dict identifying the configuration.
        files: top-level names this tool writes in ``path`` (``run.json`` and the scratch folder are
            added). Only these are ever deleted, and only when an old manifest lists them too; inside a
            listed folder only what the tools write there (`OWNED`), never a file of the user's.
        overwrite: replace a run of another configuration, or write into a foreign non-empty folder.

    `open` takes an advisory lock (``flock`` on ``.tfqbnn.lock``) held until `release` or the end of the
    process: a second process on the same folder is refused, naming the holder's PID.
    """

    def __init__(self, path, kind, fingerprint, files, overwrite=False):
        self.path = Path(path)
        self.kind = str(kind)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.files = sorted(set(files) | {MANIFEST, SCRATCH})
        for name in self.files:
            if not name or "/" in name or "\\" in name or name in (".", "..") or name == LOCK:
                raise ValueError(f"`files` must hold plain file names; received {name!r}")
        self.overwrite = bool(overwrite)
        self.state = None
        self._lock = None

    @property
    def scratch(self):
        return self.path / SCRATCH

    @property
    def manifest_path(self):
        return self.path / MANIFEST

    def read_manifest(self):
        p = self.manifest_path
        if not p.is_file():
            return None
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise RunDirError(self.path, f"unreadable {MANIFEST} ({type(e).__name__}); remove it or choose another --out")
        if not (isinstance(m, dict) and m.get("tool") == "tfqbnn" and isinstance(m.get("files"), list)):
            raise RunDirError(self.path, f"{MANIFEST} was not written by tfqbnn; choose another --out")
        return m

    def open(self):
        """Locks the folder, checks it and writes the manifest; returns ``"new"``, ``"resume"`` or ``"done"``."""
        try:
            make_dir(self.path)
        except ValueError as e:
            raise RunDirError(self.path, str(e)[len(str(self.path)) + 2:]) from None
        self._acquire()
        try:
            return self._open()
        except BaseException:
            self.release()
            raise

    def _open(self):
        p = self.path
        old = self.read_manifest()
        if old is None:
            entries = self._entries()
            if entries and not self.overwrite:
                raise RunDirError(p, f"not empty and not a tfqbnn {self.kind} run (holds {entries[0]!r}"
                                     f"{f' and {len(entries) - 1} more' if len(entries) > 1 else ''}); "
                                     "choose another --out, or pass --overwrite to write beside those files")
            self._refuse_collisions(entries)
            return self._start()
        diff = None if old.get("kind") == self.kind else ("kind", old.get("kind"), self.kind)
        diff = diff or first_difference(old.get("fingerprint"), self.fingerprint)
        if diff is None and not self.overwrite:
            if old.get("status") != "done":
                self.state = "resume"
                return self.state
            broken = self._seal_problem(old)
            if broken:
                raise RunDirError(p, f"{MANIFEST} says finished, but {broken}; pass --overwrite to rebuild the run "
                                     "(only files tfqbnn wrote are deleted)")
            self.state = "done"
            return self.state
        if diff is not None and not self.overwrite:
            key, a, b = diff
            raise RunDirError(p, f"holds a {old.get('kind')} run with {key}={_short(a)}, not {_short(b)}; "
                                 "choose another --out, or pass --overwrite to replace that run")
        kept = self._delete_own(old)
        self._refuse_collisions([e for e in self._entries() if e not in kept])
        return self._start()

    def _entries(self):
        """Names in the folder, without our lock and our own temp files (never reported as the user's)."""
        return sorted(e.name for e in self.path.iterdir() if e.name != LOCK and not is_temp_name(e.name))

    def _acquire(self):
        """flock on the lock file (opened without following a link); RunDirError naming the holder's PID."""
        lock = self.path / LOCK
        for _ in range(20):  # the holder may unlink the file between our open and our flock: then again
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise RunDirError(self.path, f"{LOCK} is a link, which tfqbnn did not make; remove it") from None
                raise RunDirError(self.path, f"cannot write into it ({e.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirError(self.path, f"in use by another tfqbnn process (PID {self._holder(lock)}); wait "
                                             "for it to finish or choose another --out") from None
            if os.path.exists(lock) and os.stat(lock).st_ino == os.fstat(fd).st_ino:
                content = os.pread(fd, 256, 0).decode(errors="replace")
                if content and not content.startswith(_LOCK_HEADER):
                    os.close(fd)
                    raise RunDirError(self.path, f"holds {LOCK!r}, which tfqbnn did not write; move it away")
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{_LOCK_HEADER}{os.getpid()}\n".encode(), 0)
                self._lock = fd
                return
            os.close(fd)
        raise RunDirError(self.path, f"could not lock {LOCK}")

    def _holder(self, lock):
        for _ in range(50):  # the holder writes its PID just after taking the lock
            try:
                text = lock.read_text()
            except OSError:
                text = ""
            if text.startswith(_LOCK_HEADER) and text[len(_LOCK_HEADER):].strip().isdigit():
                return int(text[len(_LOCK_HEADER):])
            time.sleep(0.02)
        return "unknown"

    def release(self):
        """Unlocks the folder (also at the end of the process)."""
        if self._lock is None:
            return
        try:
            with contextlib.suppress(OSError):
                if os.stat(self.path / LOCK).st_ino == os.fstat(self._lock).st_ino:
                    os.unlink(self.path / LOCK)  # while still locked: a waiting process then retries on a new file
        finally:
            os.close(self._lock)
            self._lock = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.release()

    def _refuse_collisions(self, entries):
        clash = [n for n in entries if n in self.files]
        if clash:
            raise RunDirError(self.path, f"holds {clash[0]!r}, which tfqbnn did not write and would replace; "
                                         "move it away or choose another --out")

    def _delete_own(self, old):
        """Deletes what the old manifest lists and this tool could have written; nothing else. Returns the listed
        folders that stay because they hold files of the user's (ours to write into)."""
        kept = set()
        for name in old["files"]:
            if not isinstance(name, str) or name not in self.files or name == MANIFEST:
                continue  # a crafted manifest cannot make us delete a user's file
            target = self.path / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                _delete_owned_tree(target, OWNED.get(name))
                if target.exists():
                    kept.add(name)
        self.manifest_path.unlink()
        return kept

    def _start(self):
        self._write({"status": "running"})
        self.state = "new"
        return self.state

    def _write(self, extra):
        m = {"tool": "tfqbnn", "kind": self.kind, "fingerprint": self.fingerprint, "files": self.files,
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **extra}
        old = self.read_manifest() if self.manifest_path.exists() else None
        if old:
            m["created"] = old.get("created", m["created"])
            m = {**old, **m, "created": m["created"]}
        try:
            write_json(self.manifest_path, m)
        except OSError as e:
            raise RunDirError(self.path, f"cannot write {MANIFEST} ({e.strerror})") from None

    def add_files(self, names):
        """Registers more top-level names (written before the files themselves)."""
        new = sorted(set(self.files) | set(names))
        if new != self.files:
            self.files = new
            self._write({})

    def _hashes(self):
        """SHA-256 of every listed regular file now in the folder (folders are logs and scratch)."""
        out = {}
        for name in self.files:
            f = self.path / name
            if name != MANIFEST and f.is_file() and not f.is_symlink():
                out[name] = sha256_file(f)
        return out

    def _seal_problem(self, m):
        """Why a finished run's files do not match its manifest (None when they do)."""
        hashes = m.get("hashes")
        if not isinstance(hashes, dict) or m.get("seal") != digest([m.get("kind"), m.get("fingerprint"), hashes]):
            return "its fingerprint does not match the seal written when it finished (the manifest was edited)"
        for name, h in hashes.items():
            f = self.path / str(name)
            if not f.is_file() or f.is_symlink() or sha256_file(f) != h:
                return f"{name} does not match the hash written when it finished"
        return None

    def finish(self, **extra):
        """Marks the run finished (a later open with the same fingerprint returns ``"done"`` while the listed
        files keep the hashes recorded here)."""
        hashes = self._hashes()
        self._write({"status": "done", **extra, "hashes": hashes,
                     "seal": digest([self.kind, self.fingerprint, hashes])})
        self.state = "done"

    def remove_scratch(self):
        if self.scratch.is_dir():
            _delete_owned_tree(self.scratch, OWNED[SCRATCH])


def _delete_owned_tree(folder, patterns):
    """Deletes the files under ``folder`` that the tools write (relative paths matching ``patterns``, or, with
    None, basenames the tools write anywhere), then the folders left empty; links are removed, never followed."""
    for root, dirs, names in os.walk(folder, topdown=False):
        for n in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, n), folder).replace(os.sep, "/")
            ours = (any(fnmatch.fnmatch(rel, pat) for pat in patterns) if patterns is not None
                    else any(fnmatch.fnmatch(n, pat) for pat in _OWNED_ANYWHERE)) or is_temp_name(n) or n == LOCK
            if ours:
                os.unlink(os.path.join(root, n))
        with contextlib.suppress(OSError):  # not empty: a file of the user's is in it
            os.rmdir(root)


def _short(v, n=60):
    s = json.dumps(v, default=str)
    return s if len(s) <= n else s[: n - 3] + "..."
