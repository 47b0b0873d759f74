#!/usr/bin/env bash
# Interop with gguf-py (the `gguf` package on PyPI), in a throw-away venv:
#  1. gguf-py reads a file our writer produced (examples/gguf_write_standard.rs, every value type,
#     standard tensor types) with the same metadata and tensor infos as `bitnet-inspect --json`;
#  2. we read files gguf-py wrote (one written here, plus the gguf-py-written fixtures) the same
#     way gguf-py reads them;
#  3. gguf-py dequantizes the Q8_0, Q6_K and Q4_0 token embeddings our converter writes exactly as we
#     do (our dequantization: `gguf-to-gguf --embed-type f32` of the same file).
# Fails (non-zero) on any mismatch. Needs python3 with venv and network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check gguf numpy
py="$work/venv/bin/python"
"$py" -c 'import gguf, importlib.metadata as m; print("gguf-py", m.version("gguf"))'

cargo build --quiet --bin bitnet-inspect --bin bitnet-convert --example gguf_write_standard
target="${CARGO_TARGET_DIR:-target}/debug"
inspect="$target/bitnet-inspect"

check() { # FILE
  "$inspect" --json --full "$1" > "$work/ours.json"
  "$py" tests/interop/check.py compare "$1" "$work/ours.json"
}

"$target/examples/gguf_write_standard" "$work/ours.gguf"
check "$work/ours.gguf"

"$py" tests/interop/check.py write "$work/theirs.gguf"
check "$work/theirs.gguf"

for f in fixtures/ref-tiny/gguf/ref-tiny-tq1_0.gguf fixtures/ref-tiny/gguf/ref-tiny-tq2_0.gguf; do
  check "$f"
done
convert="$target/bitnet-convert"
for embed in q8_0 q6_k q4_0; do
  q="$work/ref-tiny-$embed.gguf"
  "$convert" hf-to-gguf fixtures/ref-tiny/packed -o "$q" --layout tq2_0 --embed-type "$embed" -q
  "$convert" gguf-to-gguf "$q" -o "$work/ref-tiny-$embed-f32.gguf" --layout tq2_0 --embed-type f32 -q
  check "$q"
  "$py" tests/interop/check.py dequant "$q" "$work/ref-tiny-$embed-f32.gguf"
done
echo "interop: all checks passed"
