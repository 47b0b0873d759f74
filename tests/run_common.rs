//! Helpers shared by the runtime tests.

use bitnet_gguf::gguf::{map_file, GgufFile, MappedFile};
use bitnet_gguf::layout::kernel_config::KernelConfig;
use bitnet_gguf::runtime::kernels::{Isa, Kernels};
use bitnet_gguf::runtime::{LoadOptions, Model, Session};
use std::path::{Path, PathBuf};

pub const REFERENCE: &str = "fixtures/ref-tiny/reference";
pub const LAYOUTS: [&str; 5] = ["i2_s", "tl1", "tl2", "tq1_0", "tq2_0"];

pub fn gguf_path(layout: &str) -> PathBuf {
    PathBuf::from(format!("fixtures/ref-tiny/gguf/ref-tiny-{layout}.gguf"))
}

/// The kernel_config.ini beside a TL file (the fixtures record no tiling in the file).
pub fn kernel_config(layout: &str) -> Option<KernelConfig> {
    let p = PathBuf::from(format!(
        "fixtures/ref-tiny/gguf/ref-tiny-{layout}.kernel_config.ini"
    ));
    p.exists()
        .then(|| KernelConfig::parse(&std::fs::read_to_string(p).unwrap()).unwrap())
}

pub fn map(path: &Path) -> MappedFile {
    map_file(path).unwrap()
}

/// Runs `f` with the loaded ref-tiny model of `layout`.
pub fn with_model<T>(layout: &str, f: impl FnOnce(&Model<'_>, &GgufFile<'_>) -> T) -> T {
    let mapped = map(&gguf_path(layout));
    let file = GgufFile::parse(&mapped).unwrap();
    let model = Model::load(
        &file,
        &LoadOptions {
            kernel_config: kernel_config(layout),
        },
    )
    .unwrap();
    f(&model, &file)
}

/// Teacher-forced logits of every reference sequence, concatenated.
pub fn all_logits(model: &Model<'_>, kernels: &Kernels, batched: bool) -> Vec<Vec<f32>> {
    let seqs = bitnet_gguf::runtime::parity::read_inputs(Path::new(REFERENCE)).unwrap();
    let mut session = Session::new(model, kernels, 64);
    seqs.iter()
        .map(|s| {
            session.reset();
            if batched {
                session
                    .forward(&s.ids, bitnet_gguf::runtime::Logits::All)
                    .unwrap()
            } else {
                s.ids
                    .iter()
                    .flat_map(|&id| {
                        session
                            .forward(&[id], bitnet_gguf::runtime::Logits::Last)
                            .unwrap()
                    })
                    .collect()
            }
        })
        .collect()
}

pub fn kernels(isa: Option<Isa>) -> Kernels {
    Kernels::new(1, isa).unwrap()
}
