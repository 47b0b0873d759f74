//! `bitnet-inspect`: what is in a GGUF file, whether it is valid, which runtimes can load it.
fn main() -> std::process::ExitCode {
    eprintln!("bitnet-inspect: not built yet (issue 2)");
    std::process::ExitCode::from(2)
}
