#!/usr/bin/env python3
"""Copy a GGUF file under another `general.architecture` (keys `OLD.*` become `NEW.*`), tensors
unchanged. Used to benchmark llama.cpp mainline, which knows the 2B-4T graph's shapes only as
arch `bitnet` (its graph uses SiLU where BitNet-b1.58-2B-4T uses relu², so the logits are wrong
but the cost per token is the same). Needs `pip install gguf numpy`.

  gguf_rename_arch.py IN.gguf OUT.gguf NEW_ARCH
"""
import sys

import gguf
from gguf import GGUFReader, GGUFValueType, GGUFWriter


def main(src, dst, new_arch):
    r = GGUFReader(src)
    old_arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, new_arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        key = new_arch + name[len(old_arch):] if name.startswith(old_arch + ".") else name
        vtype = field.types[0]
        sub = field.types[1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        # t.data is shaped in bytes for block types, which is what add_tensor expects.
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{dst}: {old_arch} -> {new_arch}, {len(r.tensors)} tensors")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
