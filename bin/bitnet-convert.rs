//! `bitnet-convert`: conversions between HF checkpoints and GGUF layouts.
fn main() -> std::process::ExitCode {
    eprintln!("bitnet-convert: not built yet (issue 4)");
    std::process::ExitCode::from(2)
}
