"""Trusting an export directory (SPEC.md section 6, manifest): SHA-256 of every written file, and
`load_exported`, which verifies those hashes and cross-checks manifest.json against model.tflite
(layer list, shapes, bits, layout, SIGMA_Q, stored code tensors, seed, activations, scales, SoftPlus
LUTs, softmax parameters) before returning the `reference.IntegerModel`. Every error is one line
that names the file at fault.

The hashes catch corruption; they are not a signature (whoever can rewrite the files can rewrite
the manifest). The cross-checks make sure the model that is returned is the one model.tflite runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import PurePosixPath

import numpy as np

import qbnn_safeio as safeio
from qbnn_safeio import sha256_file
from tflite_export import reference, storage, tflite_io
from tflite_export.intmath import softmax

MANIFEST_VERSION = 2  # 2: "files" (SHA-256 of every written file) and per-tensor "sha256" of the stored codes
PACKED_MANIFEST_VERSION = 3  # 3: version 2 whose layers may use the PACKED layout (id 3, SPEC 2); written only then
MANIFEST_VERSIONS = (MANIFEST_VERSION, PACKED_MANIFEST_VERSION)
MANIFEST = "manifest.json"
FORMAT = "tfqbnn QBNN-INT"  # manifest.json's "format"
INTERRUPTED = "unfinished"  # the key of the marker manifest an export writes before its files


class ArtifactError(ValueError):
    """An export directory that does not verify (a ValueError: the message names the file)."""


def file_entries(root, relpaths):
    """{posix relpath: {"sha256", "bytes"}} of files under `root`."""
    out = {}
    for rel in sorted(relpaths):
        path = os.path.join(os.fspath(root), *PurePosixPath(rel).parts)
        out[rel] = {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}
    return out


def snapshot(root):
    """{posix relpath: (size, mtime_ns)} of every file under `root` (to find what a writer wrote)."""
    root = os.fspath(root)
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            st = os.stat(p)
            out[PurePosixPath(os.path.relpath(p, root)).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def write_manifest(out_dir, info):
    """manifest.json written atomically (see `safeio.atomic_path`): a crash leaves the old manifest or the new one."""
    path = os.path.join(os.fspath(out_dir), MANIFEST)
    safeio.write_text(path, json.dumps(info, indent=1))
    return path


def verify_files(export_dir, man, man_path):
    """Check the SHA-256 and size of every file listed in the manifest."""
    files = man.get("files")
    if not isinstance(files, dict) or "model.tflite" not in files:
        raise ArtifactError(f"{man_path}: no 'files' entry with the SHA-256 of model.tflite (manifest version "
                         f"{man.get('version')!r}; version {MANIFEST_VERSION} has them); re-export with scripts/export.py")
    for rel, entry in files.items():
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
            raise ArtifactError(f"{man_path}: file entry {safeio.bounded_repr(rel)} is not a path inside the export "
                                "directory")
        canonical = PurePosixPath(rel).as_posix()
        if canonical != rel:  # "./x", "a//x", "x/": each file is listed once, under one spelling
            raise ArtifactError(f"{man_path}: file entry {safeio.bounded_repr(rel)} names {canonical} again"
                                if canonical in files else
                                f"{man_path}: file entry {safeio.bounded_repr(rel)} is not written as {canonical!r}")
        path = os.path.join(os.fspath(export_dir), *parts)
        if not os.path.isfile(path):
            raise ArtifactError(f"{path}: missing (listed in {man_path})")
        digest = sha256_file(path)
        if not isinstance(entry, dict) or digest != entry.get("sha256"):
            raise ArtifactError(f"{path}: SHA-256 {digest[:16]}... does not match {man_path} "
                             f"({str(entry.get('sha256') if isinstance(entry, dict) else entry)[:16]}...); "
                             "the file was modified or corrupted")


def _layer(info, codes):
    return reference.IntegerLayer(
        name=str(info["name"]), index=int(info["index"]), mu_codes=codes["mu_codes"].astype(np.int16),
        sigma_codes=codes["sigma_codes"].astype(np.int16), weight_bits=int(info["weight_bits"]),
        sigma_bits=int(info["sigma_bits"]), layout=int(info["layout_id"]),
        sigma_q=np.asarray(info["sigma_q"], np.int32), sigma_range=tuple(info["sigma_range"]),
        activation=str(info["activation"]), input_scale=np.float32(info["input_scale"]),
        input_zero_point=int(info["input_zero_point"]), output_scale=np.float32(info["output_scale"]),
        output_zero_point=int(info["output_zero_point"]),
        lut=None if info["softplus_lut"] is None else np.asarray(info["softplus_lut"], np.int64).astype(np.int8),
        lut_scale=None if info["softplus_scale"] is None else np.float32(info["softplus_scale"]),
        lut_zero_point=None if info["softplus_zero_point"] is None else int(info["softplus_zero_point"]))


def _same(a, b):
    return a is None and b is None or (a is not None and b is not None and np.float32(a) == np.float32(b))


def _check_layer(info, stored, graph, man_path):
    """Cross-check one manifest layer entry against model.tflite's QBNN_SAMPLE op and graph."""
    where = f"{man_path}: layer {info.get('name')!r}"
    want = {"name": graph["name"], "index": stored["index"], "rows": stored["rows"], "cols": stored["cols"],
            "weight_bits": stored["weight_bits"], "sigma_bits": stored["sigma_bits"],
            "layout_id": stored["layout"], "activation": graph["activation"]}
    for key, value in want.items():
        if info.get(key) != value:
            raise ArtifactError(f"{where}: {key}={info.get(key)!r} but model.tflite has {value!r}")
    if not np.array_equal(np.asarray(info["sigma_q"], np.int64), stored["sigma_q"]):
        raise ArtifactError(f"{where}: sigma_q table differs from model.tflite's QBNN_SAMPLE options")
    tensors = [{"name": n, "dtype": str(a.dtype), "shape": list(a.shape), "bytes": int(a.nbytes),
                "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}
               for n, a in stored["tensors"]]
    if info.get("stored_tensors") != tensors:
        raise ArtifactError(f"{where}: stored_tensors (names, shapes, bytes or SHA-256 of the mu/sigma codes) differ "
                         "from model.tflite's QBNN_SAMPLE constants")
    layer = _layer(info, stored)
    for key, ours, theirs in (("weight_scale", layer.weight_scale, graph["weight"][0]),
                              ("input_scale", layer.input_scale, graph["input"][0]),
                              ("output_scale", layer.output_scale, graph["output"][0]),
                              ("softplus_scale", layer.lut_scale, graph["softplus"][0])):
        if not (_same(ours, theirs) and _same(info.get(key), theirs)):
            raise ArtifactError(f"{where}: {key}={info.get(key)!r} but model.tflite has "
                             f"{None if theirs is None else float(theirs)!r}")
    for key, ours, theirs in (("input_zero_point", layer.input_zero_point, graph["input"][1]),
                              ("output_zero_point", layer.output_zero_point, graph["output"][1]),
                              ("softplus_zero_point", layer.lut_zero_point, graph["softplus"][1])):
        if ours != theirs:
            raise ArtifactError(f"{where}: {key}={info.get(key)!r} but model.tflite has {theirs!r}")
    if tuple(int(v) for v in layer.multiplier) != (int(info["multiplier"]), int(info["shift"])):
        raise ArtifactError(f"{where}: multiplier/shift do not follow from its scales")
    if list(layer.act_range) != [info.get("activation_min"), info.get("activation_max")]:
        raise ArtifactError(f"{where}: activation_min/max differ from its activation and zero point")
    want = layer.manifest_entry()  # the derived fields (layout name, byte counts, ...): exactly the writer's
    for key in list(info) + [k for k in want if k not in info]:
        if info.get(key) != want.get(key):
            raise ArtifactError(f"{where}: {key} does not follow from the rest of its entry and model.tflite "
                                f"(expected {str(want.get(key))[:60]})")
    if layer.activation == "softplus":
        lut, _ = reference.softplus_lut(layer.output_scale, layer.output_zero_point, layer.lut_scale,
                                        layer.lut_zero_point)
        given = np.asarray(info["softplus_lut"] if info["softplus_lut"] is not None else [], np.int64)
        if given.shape != (256,) or not np.array_equal(given, lut):
            raise ArtifactError(f"{where}: softplus_lut is not the SoftPlus table of model.tflite's scales")
    elif info.get("softplus_lut") is not None:
        raise ArtifactError(f"{where}: softplus_lut given for activation {layer.activation!r}")
    return layer


def check_manifest(man, data, man_path, tfl_path):
    """`reference.IntegerModel` from manifest.json + model.tflite bytes, after cross-checking them. A manifest of
    SPEC v1 layers only (no "kind") is checked field by field against the v1 graph; any other goes through the
    op registry (`_check_ops`)."""
    seed = man.get("default_seed")
    if type(seed) is not int or not 0 <= seed <= 0xFFFFFFFF:  # exactly the 32-bit seed model.tflite stores
        raise ArtifactError(f"{man_path}: default_seed={safeio.bounded_repr(seed)} is not a 32-bit seed")
    entries = man.get("layers")
    if isinstance(entries, list) and any(isinstance(e, dict) and "kind" in e for e in entries):
        try:
            return _check_ops(man, data, man_path, tfl_path)
        except ArtifactError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError) as err:
            raise ArtifactError(f"{man_path}: malformed entry ({type(err).__name__}: {err})") from None
    graph = tflite_io.read_graph(data, tfl_path)
    stored = tflite_io.read_qbnn_layers(data, tfl_path)
    try:
        return _check_manifest(man, data, graph, stored, man_path, tfl_path)
    except ArtifactError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError) as err:  # wrong JSON types
        raise ArtifactError(f"{man_path}: malformed entry ({type(err).__name__}: {err})") from None


def _check_manifest(man, data, graph, stored, man_path, tfl_path):
    entries = man.get("layers")
    if not isinstance(entries, list) or len(entries) != len(stored) or len(graph["layers"]) != len(stored):
        n = len(entries) if isinstance(entries, list) else entries
        raise ArtifactError(f"{man_path}: layer list has {n} entries but model.tflite has {len(stored)} QBNN_SAMPLE "
                         "layers")
    layers = [_check_layer(info, s, g, man_path) for info, s, g in zip(entries, stored, graph["layers"])]
    seeds = {s["default_seed"] for s in stored}
    if seeds != {man.get("default_seed")}:
        raise ArtifactError(f"{man_path}: default_seed={man.get('default_seed')!r} but model.tflite has {sorted(seeds)}")
    inp = man.get("input", {})
    if (inp.get("shape") != [1, layers[0].shape[1]] or not _same(inp.get("scale"), graph["input"][0])
            or inp.get("zero_point") != graph["input"][1]):
        raise ArtifactError(f"{man_path}: input {inp!r} differs from model.tflite's input tensor {graph['input']}")
    want = dict(zip(("input_multiplier", "input_left_shift", "diff_min"),
                    softmax.softmax_params(layers[-1].output_scale)),
                output_scale=float(reference.SOFTMAX_SCALE), output_zero_point=reference.SOFTMAX_ZERO_POINT)
    got = man.get("softmax")
    if got != want or graph["softmax_output"] != (reference.SOFTMAX_SCALE, reference.SOFTMAX_ZERO_POINT):
        raise ArtifactError(f"{man_path}: softmax parameters {got!r} differ from those of model.tflite's scales {want!r}")
    imodel = reference.IntegerModel(layers, default_seed=int(man["default_seed"]))
    # Catch-all: the checked model must rebuild model.tflite byte for byte (graph, options, names, padding).
    rebuilt = tflite_io.build_tflite(imodel, split=False)
    if rebuilt != bytes(data):
        at = next((i for i, (a, b) in enumerate(zip(rebuilt, data)) if a != b), min(len(rebuilt), len(data)))
        raise ArtifactError(f"{tfl_path}: differs from the model {man_path} describes (first difference at byte {at} "
                         f"of {len(data)})")
    return imodel


def _buffer(model, tensor, nbytes, where):
    """The constant data of a model.tflite tensor, checked to hold exactly `nbytes` (nothing is allocated from a
    size a file claims)."""
    buf = model.buffers[tensor.buffer].data if 0 <= tensor.buffer < len(model.buffers) else None
    size = 0 if buf is None else len(buf)
    if size != nbytes:
        raise ArtifactError(f"{where}: model.tflite's tensor {tflite_io._name(tensor)!r} holds {size} bytes, the "
                            f"manifest describes {nbytes}")
    return np.asarray(buf, np.uint8)


def _op_arrays(model, tensors, entry, where):
    """{stored name: array} of one op, read from model.tflite by tensor name: the QBNN_SAMPLE inputs of a
    Bayesian op (as its manifest's stored_tensors list them), the constant filter of a deterministic one."""
    name = entry["name"]
    if "kind" not in entry or entry.get("bayesian"):
        out = {}
        for t in entry["stored_tensors"]:
            tensor = tensors.get(f"{name}/{t['name']}_codes")
            if tensor is None:
                raise ArtifactError(f"{where}: stored tensor {t['name']!r} is not in model.tflite")
            shape = [int(v) for v in t["shape"]]
            dtype = np.dtype(t["dtype"])
            if dtype not in (np.int8, np.uint8):
                raise ArtifactError(f"{where}: stored tensor {t['name']!r} has dtype {t['dtype']!r}")
            out[t["name"]] = _buffer(model, tensor, int(np.prod(shape)), where).view(dtype).reshape(shape)
        return out
    if "filter_shape" not in entry:
        return {}
    tensor = tensors.get(f"{name}/filter_codes")
    if tensor is None:
        raise ArtifactError(f"{where}: its constant filter is not in model.tflite")
    shape = [int(v) for v in entry["filter_shape"]]
    n = int(np.prod(shape))
    if tensor.type == tflite_io._schema().TensorType.INT4:
        codes = storage._unpack_nibbles(_buffer(model, tensor, (n + 1) // 2, where), n, True).astype(np.int8)
    else:
        codes = _buffer(model, tensor, n, where).view(np.int8)
    codes = codes.reshape(shape)
    return {"filter": storage._pack_nibbles(codes) if int(entry["weight_bits"]) == 4 else codes}


def _check_ops(man, data, man_path, tfl_path):
    """Every manifest entry -> its op (registry kind, codes from model.tflite); the entry must be exactly what
    the writer derives from that op (`op_entry`: multipliers, LUTs, shapes, stored tensors' SHA-256, ...); the
    model must rebuild model.tflite byte for byte (else the first differing tensor / operator is named)."""
    from tflite_export.ir import registry

    model = tflite_io.read_tflite(data, tfl_path)
    tensors = {tflite_io._name(t): t for t in model.subgraphs[0].tensors or []}
    inp = man.get("input")
    if (not isinstance(inp, dict) or not isinstance(inp.get("shape"), list) or inp["shape"][:1] != [1]
            or not _same(inp.get("scale"), reference.INPUT_SCALE) or inp.get("zero_point") != reference.INPUT_ZERO_POINT):
        raise ArtifactError(f"{man_path}: input {inp!r} is not [1, ...] int8 at scale 1/255, zero point -128")
    shape = tuple(int(v) for v in inp["shape"][1:])
    quant = (reference.INPUT_SCALE, reference.INPUT_ZERO_POINT)
    ops = []
    for entry in man["layers"]:
        where = f"{man_path}: layer {entry.get('name')!r}"
        try:
            cls = registry.op_class(entry.get("kind", "QBNN_FULLY_CONNECTED"))
        except ValueError as err:
            raise ArtifactError(f"{where}: {err}") from None
        try:
            op = cls.from_manifest(entry, _op_arrays(model, tensors, entry, where))
        except (KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError) as err:
            if isinstance(err, ArtifactError):
                raise
            raise ArtifactError(f"{where}: malformed entry ({type(err).__name__}: {err})") from None
        want = op_entry(op, shape)
        for key in list(entry) + [k for k in want if k not in entry]:
            if entry.get(key) != want.get(key):
                raise ArtifactError(f"{where}: {key} does not follow from the rest of its entry and model.tflite's "
                                    f"codes (expected {str(want.get(key))[:60]})")
        # an op's own input quantization (its requantization uses it) is the output quantization of the op before
        # it: model.tflite holds the latter only
        if hasattr(op, "input_zero_point") and (not _same(op.input_scale, quant[0])
                                                or op.input_zero_point != quant[1]):
            raise ArtifactError(f"{where}: its input quantization ({op.input_scale}, {op.input_zero_point}) is not "
                                f"the output of the op before it ({float(quant[0])}, {quant[1]})")
        quant = op.output_quant(quant)
        shape = op.output_shape(shape)
        ops.append(op)
    imodel = reference.IntegerModel(ops, default_seed=int(man["default_seed"]), input_shape=inp["shape"][1:])
    want = dict(zip(("input_multiplier", "input_left_shift", "diff_min"), softmax.softmax_params(imodel.quants()[-1][0])),
                output_scale=float(reference.SOFTMAX_SCALE), output_zero_point=reference.SOFTMAX_ZERO_POINT)
    if man.get("softmax") != want:
        raise ArtifactError(f"{man_path}: softmax parameters {man.get('softmax')!r} differ from those of its scales {want!r}")
    rebuilt = tflite_io.build_tflite(imodel, split=False)
    if rebuilt != bytes(data):
        _name_difference(tflite_io.read_tflite(rebuilt), model, man_path, tfl_path, len(data))
    return imodel


def _list(v):
    return [] if v is None else np.asarray(v).tolist()


def _options(o):
    return None if o is None else {k: _list(v) if isinstance(v, np.ndarray) else v for k, v in vars(o).items()}


def _name_difference(ours, theirs, man_path, tfl_path, size):
    """Raise naming the first tensor or operator where the manifest's model and model.tflite differ."""
    a, b = ours.subgraphs[0], theirs.subgraphs[0]
    for ta, tb in zip(a.tensors, b.tensors):
        qa, qb = (None if t.quantization is None else (_list(t.quantization.scale), _list(t.quantization.zeroPoint),
                                                      t.quantization.quantizedDimension) for t in (ta, tb))
        da, db = (ours.buffers[ta.buffer].data, theirs.buffers[tb.buffer].data) if tb.buffer < len(theirs.buffers) else (0, 1)
        for field, x, y in (("name", ta.name, tb.name), ("shape", _list(ta.shape), _list(tb.shape)), ("type", ta.type, tb.type),
                            ("scale / zero_point", qa, qb), ("constant data", None if da is None else bytes(da),
                                                                 None if db is None else bytes(db))):
            if x != y:
                raise ArtifactError(f"{man_path}: tensor {tflite_io._name(ta)!r}: its {field} differs from model.tflite's "
                                    f"tensor {tflite_io._name(tb)!r}")
    for i, (oa, ob) in enumerate(zip(a.operators, b.operators)):
        ca, cb = ours.operatorCodes[oa.opcodeIndex], theirs.operatorCodes[ob.opcodeIndex]
        same = ((ca.builtinCode, ca.customCode) == (cb.builtinCode, cb.customCode)
                and _list(oa.inputs) == _list(ob.inputs) and _list(oa.outputs) == _list(ob.outputs)
                and (oa.customOptions is None) == (ob.customOptions is None)
                and (oa.customOptions is None or bytes(oa.customOptions) == bytes(ob.customOptions))
                and _options(oa.builtinOptions) == _options(ob.builtinOptions))
        if not same:
            name = tflite_io._name(a.tensors[oa.outputs[0]])
            what = "its kind, wiring or options"
            if oa.customOptions is not None and ob.customOptions is not None:
                try:  # name the QBNN_SAMPLE option that differs
                    pa, pb = (tflite_io.unpack_options(bytes(o.customOptions)) for o in (oa, ob))
                    what = "QBNN_SAMPLE option " + next(k for k in pa if not np.array_equal(pa[k], pb[k]))
                except (ValueError, StopIteration):
                    pass
            raise ArtifactError(f"{man_path}: layer {name.split('/')[0]!r}: operator {i} ({name!r}): {what} differs "
                                "from model.tflite's")
    raise ArtifactError(f"{tfl_path}: differs from the model {man_path} describes ({size} bytes)")


def load_exported(export_dir):
    """`reference.IntegerModel` of an export directory: every file's SHA-256 checked against manifest.json,
    then manifest.json cross-checked against model.tflite (and model_split.tflite rebuilt identically)."""
    export_dir = os.fspath(export_dir)
    man_path, tfl_path = os.path.join(export_dir, MANIFEST), os.path.join(export_dir, "model.tflite")
    for path in (man_path, tfl_path):
        if not os.path.isfile(path):
            raise ArtifactError(f"{path}: missing (expected an export directory written by scripts/export.py)")
    try:
        with open(man_path) as f:
            man = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{man_path}: not a readable JSON manifest ({type(err).__name__}: {err})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise ArtifactError(f"{man_path}: not a tfqbnn QBNN-INT manifest")
    if man.get(INTERRUPTED):
        raise ArtifactError(f"{man_path}: the export that wrote this folder was interrupted before it finished; "
                            "rerun tfqbnn-export with the same --out")
    if type(man.get("version")) is not int or man["version"] not in MANIFEST_VERSIONS:
        raise ArtifactError(f"{man_path}: version {safeio.bounded_repr(man.get('version'))} is not supported (this "
                            f"tfqbnn reads versions {' and '.join(map(str, MANIFEST_VERSIONS))}); re-export with "
                            "tfqbnn-export")
    verify_files(export_dir, man, man_path)
    with open(tfl_path, "rb") as f:
        data = f.read()
    imodel = check_manifest(man, data, man_path, tfl_path)
    if man["version"] != manifest_version(imodel):
        raise ArtifactError(f"{man_path}: version {man['version']} but its layers' layouts make it version "
                            f"{manifest_version(imodel)} (version {PACKED_MANIFEST_VERSION} exactly when a layer is PACKED)")
    split_path = os.path.join(export_dir, "model_split.tflite")
    if "model_split.tflite" in man["files"]:
        with open(split_path, "rb") as f:
            if f.read() != tflite_io.build_tflite(imodel, split=True):
                raise ArtifactError(f"{split_path}: differs from the model {man_path} describes")
    return imodel


def manifest_version(imodel):
    """The manifest version an export of `imodel` carries: 3 when a Bayesian op stores PACKED pairs, else 2 (so
    every export without them is byte for byte what a version 2 exporter writes)."""
    layouts = {op.weights.layout if hasattr(op, "weights") else op.layout for op in imodel.layers if op.bayesian}
    return PACKED_MANIFEST_VERSION if storage.LAYOUT_PACKED in layouts else MANIFEST_VERSION


def op_entry(op, in_shape):
    """manifest.json's entry of one IR op (writer and `load_exported` both call this): the op's
    `manifest_entry()` plus, for every op with a "kind", its per-example input / output shapes and what it stores
    (stored tensors with SHA-256, stored bytes, table bytes, float32 bytes of the Keras parameters it replaces:
    mu + sigma for a Bayesian filter, the kernel for a constant one). A kind-less entry is the SPEC v1
    QBNN_FULLY_CONNECTED layer, kept byte for byte."""
    entry = op.manifest_entry()
    if "kind" not in entry:
        return entry
    tensors = storage.stored_tensor_entries(op)
    table = float32 = 0
    if op.has_weights:
        n = int(np.prod(op.weights.shape))
        float32 = (8 if op.bayesian else 4) * n
        table = int(op.weights.sigma_q.nbytes) if op.bayesian else 0
    if getattr(op, "lut", None) is not None:
        table += 256
    entry.update(input_shape=[int(v) for v in in_shape], output_shape=[int(v) for v in op.output_shape(tuple(in_shape))],
                 stored_tensors=tensors, stored_bytes=sum(t["bytes"] for t in tensors), table_bytes=table,
                 float32_mu_sigma_bytes=float32)
    return entry


__all__ = ["ArtifactError", "MANIFEST_VERSION", "MANIFEST_VERSIONS", "manifest_version", "load_exported", "check_manifest", "verify_files", "file_entries", "sha256_file",
           "write_manifest", "snapshot"]
