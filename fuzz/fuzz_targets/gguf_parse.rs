//! Fuzz the GGUF reader, strict and lenient, and everything built on a successful parse
//! (inspect report, data checks, rewrite).
#![no_main]

use bitnet_gguf::gguf::{self, Contiguity, GgufFile, ReadOptions};
use bitnet_gguf::inspect::{self, InspectOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = GgufFile::parse(data) {
        let _ = f.validate_data();
        let out = gguf::rewrite(&f, Vec::new()).expect("valid files can be rewritten");
        assert!(GgufFile::parse(&out).is_ok(), "rewrite output must parse");
    }
    let lenient = ReadOptions {
        contiguity: Contiguity::Lenient,
        allow_nested_arrays: true,
        require_architecture: false,
        ..ReadOptions::default()
    };
    let _ = GgufFile::parse_with(data, &lenient);
    let options = InspectOptions {
        stats: true,
        validate_data: true,
        ..InspectOptions::default()
    };
    if let Ok(r) = inspect::inspect_bytes("fuzz", data, &options) {
        let _ = r.to_text();
        let _ = r.to_json();
    }
});
