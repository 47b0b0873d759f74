//! Writes a GGUF file with every metadata value type and the standard tensor types, for the
//! gguf-py interop check (`tests/interop/run.sh`). Usage: `gguf_write_standard OUT.gguf`.

use bitnet_gguf::gguf::{GgmlType, GgufWriter, MetaArray, Metadata, TensorDesc};
use bitnet_gguf::io::AtomicFile;

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gguf_write_standard OUT.gguf"))?;
    let mut m = Metadata::new();
    m.push("general.architecture", "llama")?;
    m.push("general.name", "interop")?;
    m.push("test.u8", 200u8)?;
    m.push("test.i8", -100i8)?;
    m.push("test.u16", 60000u16)?;
    m.push("test.i16", -30000i16)?;
    m.push("test.u32", 4_000_000_000u32)?;
    m.push("test.i32", -2_000_000_000i32)?;
    m.push("test.f32", 1e-5f32)?;
    m.push("test.bool", true)?;
    m.push("test.string", "héllo wörld")?;
    m.push("test.u64", u64::MAX)?;
    m.push("test.i64", i64::MIN)?;
    m.push("test.f64", std::f64::consts::PI)?;
    m.push("test.arr_u8", MetaArray::U8(vec![1, 2, 3]))?;
    m.push("test.arr_i8", MetaArray::I8(vec![-1, 0, 1]))?;
    m.push("test.arr_u16", MetaArray::U16(vec![1, 65535]))?;
    m.push("test.arr_i16", MetaArray::I16(vec![-32768, 32767]))?;
    m.push("test.arr_u32", vec![7u32, 8, 9])?;
    m.push("test.arr_i32", vec![1i32, 3, -5])?;
    m.push("test.arr_f32", vec![0.0f32, -1000.0, 0.5])?;
    m.push("test.arr_bool", vec![true, false, true])?;
    m.push("test.arr_str", vec!["a", "Ġ Ġ", "<|end|>"])?;
    m.push("test.arr_u64", vec![0u64, u64::MAX])?;
    m.push("test.arr_i64", vec![i64::MIN, 5])?;
    m.push("test.arr_f64", vec![0.25f64, -2.5])?;
    let long: Vec<String> = (0..300).map(|i| format!("tok{i}")).collect();
    m.push("tokenizer.ggml.tokens", long)?;

    let tensors = [
        TensorDesc::new("f32", vec![8, 3], GgmlType::F32),
        TensorDesc::new("f16", vec![16], GgmlType::F16),
        TensorDesc::new("bf16", vec![4, 2, 2], GgmlType::BF16),
        TensorDesc::new("q4_0", vec![64, 2], GgmlType::Q4_0),
        TensorDesc::new("q8_0", vec![32, 3], GgmlType::Q8_0),
        TensorDesc::new("q6_k", vec![256], GgmlType::Q6_K),
        TensorDesc::new("tq1_0", vec![256, 2], GgmlType::TQ1_0),
        TensorDesc::new("tq2_0", vec![512], GgmlType::TQ2_0),
        TensorDesc::new("f32_4d", vec![2, 2, 2, 2], GgmlType::F32),
    ];
    let mut file = AtomicFile::create(out.as_ref())?;
    let mut w = GgufWriter::new(&mut file, &m, &tensors)?;
    for t in &tensors {
        let len = t.byte_len()? as usize;
        // Deterministic bytes; F32/F16/BF16 get finite values.
        let data: Vec<u8> = match t.ggml_type {
            GgmlType::F32 => (0..len / 4)
                .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
                .collect(),
            GgmlType::F16 | GgmlType::BF16 => (0..len / 2)
                .flat_map(|i| ((i % 64) as u16 * 64).to_le_bytes())
                .collect(),
            _ => (0..len).map(|i| (i * 37 % 251) as u8).collect(),
        };
        w.write_tensor(&t.name, &data)?;
    }
    w.finish()?;
    file.commit()?;
    Ok(())
}
