//! Encode/decode throughput of every layout on a 6912 × 2560 tensor (the 2B-4T ffn_up shape).
//!
//! Run: `cargo bench --bench layout`. Prints the median of several repetitions, as GB/s of
//! *output* (packed bytes for encode, one byte per code for decode), on one thread and on all
//! threads of the rayon pool.
use bitnet_gguf::layout::dense::{Dense, DenseDtype};
use bitnet_gguf::layout::hf_packed::HF_PACKED;
use bitnet_gguf::layout::i2s::I2S;
use bitnet_gguf::layout::tl1::Tl1;
use bitnet_gguf::layout::tl2::Tl2;
use bitnet_gguf::layout::tq1_0::TQ1_0;
use bitnet_gguf::layout::tq2_0::TQ2_0;
use bitnet_gguf::layout::{gpu_w2a8, ScaleRounding, Shape, TernaryCodec, TernaryTensor};
use std::hint::black_box;
use std::time::{Duration, Instant};

const REPS: usize = 7;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut out = 0;
    let times = (0..REPS)
        .map(|_| {
            let start = Instant::now();
            out = black_box(f());
            start.elapsed()
        })
        .collect();
    (median(times), out)
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn main() {
    let shape = Shape::new(6912, 2560);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let codes = (0..shape.rows * shape.cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 3) as i8 - 1
        })
        .collect();
    let tensor = TernaryTensor::new(shape, codes, 0.5).unwrap();
    let codecs: Vec<Box<dyn TernaryCodec + Sync>> = vec![
        Box::new(HF_PACKED),
        Box::new(I2S),
        Box::new(Tl1::for_shape(shape).unwrap()),
        Box::new(Tl2::for_shape(shape).unwrap()),
        Box::new(TQ1_0),
        Box::new(TQ2_0),
        Box::new(Dense {
            dtype: DenseDtype::BF16,
            scale: Some(0.5),
            rounding: ScaleRounding::Exact,
        }),
    ];
    let all = rayon::current_num_threads();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    println!("tensor {shape}, median of {REPS}; GB/s of output; 1 thread | {all} threads");
    println!("{:<10} {:>16} {:>16}", "layout", "encode", "decode");
    let n = shape.rows * shape.cols;
    for codec in &codecs {
        let bytes = codec.encode(&tensor).unwrap();
        let mut row = format!("{:<10}", codec.name());
        for threads in [
            &one,
            &rayon::ThreadPoolBuilder::new()
                .num_threads(all)
                .build()
                .unwrap(),
        ] {
            let (enc, len) = threads.install(|| time(|| codec.encode(&tensor).unwrap().len()));
            let (dec, _) =
                threads.install(|| time(|| codec.decode(&bytes, shape).unwrap().codes().len()));
            row += &format!(" enc {:>5.2} dec {:>5.2} |", gbps(len, enc), gbps(n, dec));
        }
        println!("{row}");
    }
    // I2_S into a reused buffer: the kernel alone, without allocation and page faults.
    let mut out = vec![0u8; I2S.byte_len(shape).unwrap()];
    let (enc, len) = one.install(|| {
        time(|| {
            I2S.encode_into(&tensor, &mut out).unwrap();
            out.len()
        })
    });
    println!(
        "{:<10} enc {:>5.2} (encode_into, reused buffer, 1 thread)",
        "I2_S",
        gbps(len, enc)
    );
    // The converter's hot path: HF packed bytes → canonical codes → I2_S, both buffers reused
    // across tensors as `bitnet-convert` does (fresh multi-megabyte buffers are page-fault bound).
    let hf_bytes = HF_PACKED.encode(&tensor).unwrap();
    let mut codes = vec![0i8; n];
    let (transcode, len) = one.install(|| {
        time(|| {
            HF_PACKED.decode_into(&hf_bytes, shape, &mut codes).unwrap();
            let t = TernaryTensor::new(shape, std::mem::take(&mut codes), 0.5).unwrap();
            I2S.encode_into(&t, &mut out).unwrap();
            codes = t.into_codes();
            out.len()
        })
    });
    println!(
        "{:<10} {:>5.2} GB/s of I2_S output (HF packed -> I2_S, 1 thread)",
        "transcode",
        gbps(len, transcode)
    );
    let (enc, len) = one.install(|| time(|| gpu_w2a8::pack(&tensor).unwrap().len()));
    let packed = gpu_w2a8::pack(&tensor).unwrap();
    let (dec, _) =
        one.install(|| time(|| gpu_w2a8::unpack(&packed, shape, 0.5).unwrap().codes().len()));
    println!(
        "{:<10} enc {:>5.2} dec {:>5.2} | (serial only)",
        "GPU_W2A8",
        gbps(len, enc),
        gbps(n, dec)
    );
}
