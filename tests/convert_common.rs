//! Helpers for the conversion tests.
use bitnet_gguf::convert::{self, EmbedType, GgufToGguf, HfToGguf, Profile};
use bitnet_gguf::gguf::GgufFile;
use bitnet_gguf::layout::LayoutKind;
use std::path::{Path, PathBuf};

pub const PACKED: &str = "fixtures/ref-tiny/packed";
pub const MASTER: &str = "fixtures/ref-tiny/master";
pub const GGUF_DIR: &str = "fixtures/ref-tiny/gguf";

/// The upstream file for a layout.
pub fn upstream(layout: &str) -> PathBuf {
    Path::new(GGUF_DIR).join(format!("ref-tiny-{layout}.gguf"))
}

/// The kernel_config.ini upstream codegen wrote for TL1/TL2.
pub fn ini(layout: LayoutKind) -> Option<PathBuf> {
    match layout {
        LayoutKind::TL1 => Some(Path::new(GGUF_DIR).join("ref-tiny-tl1.kernel_config.ini")),
        LayoutKind::TL2 => Some(Path::new(GGUF_DIR).join("ref-tiny-tl2.kernel_config.ini")),
        _ => None,
    }
}

/// The five ternary layouts with upstream reference files.
pub const TERNARY: [(LayoutKind, &str); 5] = [
    (LayoutKind::I2_S, "i2_s"),
    (LayoutKind::TL1, "tl1"),
    (LayoutKind::TL2, "tl2"),
    (LayoutKind::TQ1_0, "tq1_0"),
    (LayoutKind::TQ2_0, "tq2_0"),
];

/// Every GGUF projection layout.
pub const ALL: [LayoutKind; 8] = [
    LayoutKind::I2_S,
    LayoutKind::TL1,
    LayoutKind::TL2,
    LayoutKind::TQ1_0,
    LayoutKind::TQ2_0,
    LayoutKind::F16,
    LayoutKind::BF16,
    LayoutKind::F32,
];

/// ref-tiny packed -> `layout` in the hf-converter profile (as upstream pipeline B).
pub fn hf_converter(input: &str, out: &Path, layout: LayoutKind) -> convert::ConvertReport {
    let mut opts = HfToGguf::new(input, out);
    opts.layout = layout;
    opts.kernel_config = ini(layout);
    opts.profile = Profile::HfConverter;
    opts.name = Some("ref-tiny".into());
    opts.quiet = true;
    convert::hf_to_gguf(&opts).unwrap_or_else(|e| panic!("{layout}: {e}"))
}

/// ref-tiny packed -> `layout` with defaults (official profile) and `embed`.
pub fn official(input: &str, out: &Path, layout: LayoutKind, embed: EmbedType) {
    let mut opts = HfToGguf::new(input, out);
    opts.layout = layout;
    opts.embed_type = embed;
    opts.quiet = true;
    convert::hf_to_gguf(&opts).unwrap_or_else(|e| panic!("{layout}: {e}"));
}

/// GGUF -> GGUF; `kernel_config` for TL inputs without recorded tiling and TL outputs.
pub fn regguf(input: &Path, out: &Path, layout: LayoutKind, kernel_config: Option<PathBuf>) {
    let opts = GgufToGguf {
        input: input.to_path_buf(),
        output: out.to_path_buf(),
        layout,
        kernel_config,
        embed_type: None,
        verify: false,
        quiet: true,
    };
    convert::gguf_to_gguf(&opts).unwrap_or_else(|e| panic!("{} -> {layout}: {e}", input.display()));
}

/// (name, type name, data bytes) of every tensor.
pub fn tensor_data(bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let file = GgufFile::parse(bytes).expect("parse");
    file.tensors()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.ggml_type.name().to_string(),
                file.tensor_data(t).expect("data").to_vec(),
            )
        })
        .collect()
}

/// (key, type, encoded bytes) of every metadata record, in file order.
pub fn metadata(bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let file = GgufFile::parse(bytes).expect("parse");
    file.metadata()
        .iter()
        .map(|e| {
            let mut v = Vec::new();
            e.value.encode_into(&mut v);
            (
                e.key.to_string(),
                e.value.value_type().name().to_string(),
                v,
            )
        })
        .collect()
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
