//! Header-only inspect time on a synthetic 2B-4T-sized GGUF (issue 2: ≤ 100 ms on 1.2 GB).
//!
//! Builds a sparse file with the official 2B-4T key set (128 256 tokens, scores, token types,
//! 280 147 merges, chat template) and its 332-tensor table, sized exactly like the real file
//! (the data section is a hole), then times map + parse + report (text and JSON) in-process and
//! the `bitnet-inspect` binary end to end. Prints the median of several runs.
//!
//! Run: `cargo bench --bench inspect`

use bitnet_gguf::gguf::{self, GgmlType, GgufWriter, MetaArray, Metadata, TensorDesc};
use bitnet_gguf::inspect::{self, InspectOptions};
use std::time::{Duration, Instant};

fn metadata() -> Metadata {
    let a = "bitnet-b1.58";
    let mut m = Metadata::new();
    let k = |s: &str| format!("{a}.{s}");
    m.set("general.architecture", a);
    m.set("general.name", "bitnet2b");
    m.set(k("vocab_size"), 128_256u32);
    m.set(k("context_length"), 4096u32);
    m.set(k("embedding_length"), 2560u32);
    m.set(k("block_count"), 30u32);
    m.set(k("feed_forward_length"), 6912u32);
    m.set(k("rope.dimension_count"), 128u32);
    m.set(k("attention.head_count"), 20u32);
    m.set(k("attention.head_count_kv"), 5u32);
    m.set("tokenizer.ggml.add_bos_token", true);
    m.set(k("attention.layer_norm_rms_epsilon"), 1e-5f32);
    m.set(k("rope.freq_base"), 500_000f32);
    m.set("general.file_type", 40u32);
    m.set("tokenizer.ggml.model", "gpt2");
    // Token strings of realistic length (GPT-2 byte-level pieces average ~6-7 bytes).
    let tokens: Vec<String> = (0..128_256u32).map(|i| format!("Ġtok{i:06}")).collect();
    m.set("tokenizer.ggml.tokens", MetaArray::String(tokens));
    let scores: Vec<f32> = (0..128_256)
        .map(|i| if i < 128_000 { 0.0 } else { -1000.0 })
        .collect();
    m.set("tokenizer.ggml.scores", scores);
    let types: Vec<i32> = (0..128_256)
        .map(|i| if i < 128_000 { 1 } else { 3 })
        .collect();
    m.set("tokenizer.ggml.token_type", types);
    let merges: Vec<String> = (0..280_147u32).map(|i| format!("Ġa{i} b{i}")).collect();
    m.set("tokenizer.ggml.merges", MetaArray::String(merges));
    m.set("tokenizer.ggml.bos_token_id", 128_000u32);
    m.set("tokenizer.ggml.eos_token_id", 128_001u32);
    m.set("tokenizer.ggml.padding_token_id", 128_001u32);
    m.set("tokenizer.chat_template", "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}");
    m.set("general.quantization_version", 2u32);
    m
}

fn tensors() -> Vec<TensorDesc> {
    let mut t = vec![
        TensorDesc::new("token_embd.weight", vec![2560, 128_256], GgmlType::F16),
        TensorDesc::new("output_norm.weight", vec![2560], GgmlType::F32),
    ];
    for n in 0..30 {
        let b = |p: &str| format!("blk.{n}.{p}.weight");
        t.push(TensorDesc::new(b("attn_norm"), vec![2560], GgmlType::F32));
        t.push(TensorDesc::new(
            b("attn_q"),
            vec![2560, 2560],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("attn_k"),
            vec![2560, 640],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("attn_v"),
            vec![2560, 640],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("attn_output"),
            vec![2560, 2560],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("attn_sub_norm"),
            vec![2560],
            GgmlType::F32,
        ));
        t.push(TensorDesc::new(b("ffn_norm"), vec![2560], GgmlType::F32));
        t.push(TensorDesc::new(
            b("ffn_gate"),
            vec![2560, 6912],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("ffn_up"),
            vec![2560, 6912],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("ffn_down"),
            vec![6912, 2560],
            GgmlType::I2_S,
        ));
        t.push(TensorDesc::new(
            b("ffn_sub_norm"),
            vec![6912],
            GgmlType::F32,
        ));
    }
    t
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("synthetic-2b4t.gguf");
    let descs = tensors();
    let mut bytes = Vec::new();
    let w = GgufWriter::new(&mut bytes, &metadata(), &descs)?;
    let last = w.plan().last().map(|p| p.offset + p.byte_len).unwrap_or(0);
    let size = w.data_start() + last.next_multiple_of(32);
    let n_tensors = w.plan().len();
    // Only the header is written; the data section stays a hole.
    drop(w);
    std::fs::write(&path, &bytes)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(size)?;
    println!(
        "synthetic file: {size} bytes, {n_tensors} tensors, header {} bytes (official file: 1187801280 bytes)",
        bytes.len()
    );

    let runs = 9;
    let mut text = Vec::new();
    let mut json = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let map = gguf::map_file(&path)?;
        let report = inspect::inspect_bytes("x", &map, &InspectOptions::default())?;
        let out = report.to_text();
        text.push(t0.elapsed());
        assert!(out.contains("bitnet-b1.58"));
        let t0 = Instant::now();
        let map = gguf::map_file(&path)?;
        let report = inspect::inspect_bytes("x", &map, &InspectOptions::default())?;
        let out = report.to_json();
        json.push(t0.elapsed());
        assert!(out.len() > 1000);
    }
    println!(
        "in-process map+parse+report (text): median {:?} of {runs}",
        median(text)
    );
    println!(
        "in-process map+parse+report (json): median {:?} of {runs}",
        median(json)
    );

    let exe = env!("CARGO_BIN_EXE_bitnet-inspect");
    let mut cli = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let out = std::process::Command::new(exe).arg(&path).output()?;
        cli.push(t0.elapsed());
        anyhow::ensure!(out.status.success(), "bitnet-inspect failed");
    }
    println!(
        "bitnet-inspect FILE (whole process): median {:?} of {runs}",
        median(cli)
    );
    Ok(())
}
