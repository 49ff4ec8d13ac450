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
import hashlib
import json
import os
import shutil
from pathlib import Path

MANIFEST = "run.json"
SCRATCH = "tfqbnn-scratch"


class RunDirError(ValueError):
    """An output directory that the tool must not (or cannot) write into; one line, starts with the path."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = str(problem).replace("\n", " ")
        super().__init__(f"{self.path}: {self.problem}")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to ``path``; renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)  # atomic on one filesystem: readers see the old or the new file, never half
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text):
    write_bytes(path, text.encode())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def savez_compressed(path, **arrays):
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a name
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
            added). Only these are ever deleted, and only when an old manifest lists them too.
        overwrite: replace a run of another configuration, or write into a foreign non-empty folder.
    """

    def __init__(self, path, kind, fingerprint, files, overwrite=False):
        self.path = Path(path)
        self.kind = str(kind)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.files = sorted(set(files) | {MANIFEST, SCRATCH})
        for name in self.files:
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise ValueError(f"`files` must hold plain file names; received {name!r}")
        self.overwrite = bool(overwrite)
        self.state = None

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
        """Checks the folder and writes the manifest; returns ``"new"``, ``"resume"`` or ``"done"``."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunDirError(p, "exists and is not a directory")
        old = self.read_manifest()
        if old is None:
            entries = sorted(e.name for e in p.iterdir()) if p.is_dir() else []
            if entries and not self.overwrite:
                raise RunDirError(p, f"not empty and not a tfqbnn {self.kind} run (holds {entries[0]!r}"
                                     f"{f' and {len(entries) - 1} more' if len(entries) > 1 else ''}); "
                                     "choose another --out, or pass --overwrite to write beside those files")
            self._refuse_collisions(entries)
            return self._start()
        diff = None if old.get("kind") == self.kind else ("kind", old.get("kind"), self.kind)
        diff = diff or first_difference(old.get("fingerprint"), self.fingerprint)
        if diff is None and not self.overwrite:
            self.state = "done" if old.get("status") == "done" else "resume"
            return self.state
        if diff is not None and not self.overwrite:
            key, a, b = diff
            raise RunDirError(p, f"holds a {old.get('kind')} run with {key}={_short(a)}, not {_short(b)}; "
                                 "choose another --out, or pass --overwrite to replace that run")
        self._delete_own(old)
        self._refuse_collisions(sorted(e.name for e in p.iterdir()))
        return self._start()

    def _refuse_collisions(self, entries):
        clash = [n for n in entries if n in self.files]
        if clash:
            raise RunDirError(self.path, f"holds {clash[0]!r}, which tfqbnn did not write and would replace; "
                                         "move it away or choose another --out")

    def _delete_own(self, old):
        """Deletes what the old manifest lists and this tool could have written; nothing else."""
        for name in old["files"]:
            if not isinstance(name, str) or name not in self.files or name == MANIFEST:
                continue  # a crafted manifest cannot make us delete a user's file
            target = self.path / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
        self.manifest_path.unlink()

    def _start(self):
        self.path.mkdir(parents=True, exist_ok=True)
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
        write_json(self.manifest_path, m)

    def add_files(self, names):
        """Registers more top-level names (written before the files themselves)."""
        new = sorted(set(self.files) | set(names))
        if new != self.files:
            self.files = new
            self._write({})

    def finish(self, **extra):
        """Marks the run finished (a later open with the same fingerprint returns ``"done"``)."""
        self._write({"status": "done", **extra})
        self.state = "done"

    def remove_scratch(self):
        if self.scratch.is_dir():
            shutil.rmtree(self.scratch)


def _short(v, n=60):
    s = json.dumps(v, default=str)
    return s if len(s) <= n else s[: n - 3] + "..."
