//! `bitnet-run`: a CPU runtime for converted files.
fn main() -> std::process::ExitCode {
    eprintln!("bitnet-run: not built yet (issue 5)");
    std::process::ExitCode::from(2)
}
