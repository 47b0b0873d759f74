#!/usr/bin/env python3
"""gguf-py interop checks for bitnet-gguf (run by run.sh inside a throw-away venv).

  check.py compare FILE OURS.json   gguf-py's view of FILE must equal `bitnet-inspect --json --full FILE`
  check.py write OUT.gguf           write a file with gguf-py's GGUFWriter (standard types)
  check.py dequant Q.gguf F32.gguf  gguf-py's dequantization of Q's quantized token_embd must
                                    equal, bit for bit, the F32 token_embd we dequantized into F32

Exits non-zero on any mismatch.
"""
import json
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGMLQuantizationType


def type_name(field):
    t = field.types[0]
    if t == GGUFValueType.ARRAY:
        return f"ARRAY[{field.types[1].name}]"
    return t.name


def same(theirs, ours, elem):
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(theirs) == len(ours) and all(
            same(a, b, elem) for a, b in zip(theirs, ours))
    if elem == GGUFValueType.FLOAT32:
        return ours is not None and np.float32(theirs) == np.float32(ours)
    if elem == GGUFValueType.BOOL:
        return bool(theirs) == ours
    return theirs == ours


def compare(path, ours_path):
    with open(ours_path, encoding="utf-8") as f:
        ours = json.load(f)
    r = GGUFReader(path)
    errors = []
    fields = [(k, f) for k, f in r.fields.items() if not k.startswith("GGUF.")]
    keys = [k for k, _ in fields]
    if keys != list(ours["metadata"].keys()):
        errors.append(f"key order/set differs:\n  gguf-py {keys}\n  ours    {list(ours['metadata'])}")
    for k, f in fields:
        if k not in ours["metadata"]:
            continue
        if type_name(f) != ours["metadata_types"][k]:
            errors.append(f"{k}: type {type_name(f)} vs ours {ours['metadata_types'][k]}")
            continue
        elem = f.types[-1]
        if not same(f.contents(), ours["metadata"][k], elem):
            errors.append(f"{k}: value differs: gguf-py {f.contents()!r:.200} vs ours {ours['metadata'][k]!r:.200}")
    if len(r.tensors) != len(ours["tensors"]):
        errors.append(f"tensor count {len(r.tensors)} vs ours {len(ours['tensors'])}")
    for t, o in zip(r.tensors, ours["tensors"]):
        mine = (o["name"], o["type"], o["shape"], o["bytes"], ours["data_start"] + o["offset"])
        theirs = (t.name, t.tensor_type.name, [int(x) for x in t.shape], int(t.n_bytes), int(t.data_offset))
        if mine != theirs:
            errors.append(f"tensor differs: gguf-py {theirs} vs ours {mine}")
    if r.alignment != ours["alignment"]:
        errors.append(f"alignment {r.alignment} vs ours {ours['alignment']}")
    for e in errors:
        print(f"MISMATCH {path}: {e}", file=sys.stderr)
    print(f"{'FAIL' if errors else 'ok'}: {path}: {len(keys)} keys, {len(r.tensors)} tensors compared")
    return 1 if errors else 0


def write(out):
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("written by gguf-py")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -7)
    w.add_float32("t.f32", 0.1)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", 1e300)
    w.add_bool("t.bool", False)
    w.add_string("t.str", "ünïcødé ✓")
    w.add_array("t.arr_str", ["x", "yy", "Ġzz"])
    w.add_key_value("t.arr_f32", [1.5, -0.25], GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT32)
    w.add_key_value("t.arr_i32", [1, -2, 3], GGUFValueType.ARRAY, sub_type=GGUFValueType.INT32)
    w.add_key_value("t.arr_u64", [0, 2**64 - 1], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT64)
    w.add_key_value("t.arr_bool", [True, False], GGUFValueType.ARRAY, sub_type=GGUFValueType.BOOL)
    w.add_token_list([f"t{i}" for i in range(100)])
    w.add_tensor("a.f32", np.arange(24, dtype=np.float32).reshape(3, 8))
    w.add_tensor("b.f16", np.linspace(-1, 1, 64, dtype=np.float16).reshape(2, 32))
    w.add_tensor("c.q8_0", np.arange(3 * 34, dtype=np.uint8).reshape(3, 34), raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("d.tq2_0", np.arange(2 * 66, dtype=np.uint8).reshape(2, 66), raw_dtype=GGMLQuantizationType.TQ2_0)
    w.add_tensor("e.norm", np.ones(7, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return 0


def dequant(quantized, dequantized):
    def embedding(path):
        r = GGUFReader(path)
        return next(t for t in r.tensors if t.name == "token_embd.weight")
    q, f = embedding(quantized), embedding(dequantized)
    if f.tensor_type != GGMLQuantizationType.F32:
        print(f"FAIL: {dequantized}: token_embd is {f.tensor_type.name}, not F32", file=sys.stderr)
        return 1
    theirs = gguf.quants.dequantize(np.array(q.data), q.tensor_type).astype(np.float32).reshape(-1)
    ours = np.array(f.data, dtype=np.float32).reshape(-1)
    differ = np.flatnonzero(theirs.view(np.uint32) != ours.view(np.uint32))
    if len(theirs) != len(ours) or len(differ):
        first = int(differ[0]) if len(differ) else -1
        print(f"FAIL: {quantized}: {q.tensor_type.name} dequantization differs from ours at "
              f"{len(differ)} of {len(theirs)} values (first {first})", file=sys.stderr)
        return 1
    print(f"ok: {quantized}: gguf-py dequantizes our {q.tensor_type.name} token_embd "
          f"({len(ours)} values) exactly as we do")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "dequant":
        sys.exit(dequant(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        sys.exit(write(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
