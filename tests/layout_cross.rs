//! Cross-layout: every ternary tensor of ref-tiny's packed checkpoint goes HF packed → canonical →
//! each layout → canonical → HF packed, and comes back byte-identical, `weight_scale` included.
use bitnet_gguf::hf::{Checkpoint, Projection};
use bitnet_gguf::layout::dense::{Dense, DenseDtype};
use bitnet_gguf::layout::hf_packed::HF_PACKED;
use bitnet_gguf::layout::i2s::I2S;
use bitnet_gguf::layout::tl1::Tl1;
use bitnet_gguf::layout::tl2::Tl2;
use bitnet_gguf::layout::tq1_0::TQ1_0;
use bitnet_gguf::layout::tq2_0::TQ2_0;
use bitnet_gguf::layout::{gpu_w2a8, ScaleRounding, TernaryCodec, TernaryTensor};

#[test]
fn ref_tiny_packed_through_every_layout_back_to_packed() {
    let ckpt = Checkpoint::open("fixtures/ref-tiny/packed".as_ref()).unwrap();
    let layers = ckpt.config().num_hidden_layers;
    let mut checked = 0;
    for layer in 0..layers {
        for proj in Projection::ALL {
            let weight = ckpt.tensor(&proj.hf_weight_name(layer)).unwrap();
            let scale = ckpt.tensor(&proj.hf_scale_name(layer)).unwrap();
            let format = ckpt.scale_format(layer, proj).unwrap();
            let tensor = ckpt.projection(layer, proj, ScaleRounding::Exact).unwrap();
            let shape = tensor.shape();
            let codecs: Vec<Box<dyn TernaryCodec>> = vec![
                Box::new(I2S),
                Box::new(Tl1::for_shape(shape).unwrap()),
                Box::new(Tl2::for_shape(shape).unwrap()),
                Box::new(TQ1_0),
                Box::new(TQ2_0),
                Box::new(Dense {
                    dtype: DenseDtype::F32,
                    scale: None,
                    rounding: ScaleRounding::Exact,
                }),
                Box::new(Dense {
                    dtype: DenseDtype::F16,
                    scale: None,
                    rounding: ScaleRounding::Exact,
                }),
                Box::new(Dense {
                    dtype: DenseDtype::BF16,
                    scale: None,
                    rounding: ScaleRounding::Exact,
                }),
            ];
            let mut back: Vec<(String, TernaryTensor)> = codecs
                .iter()
                .map(|codec| {
                    let bytes = codec.encode(&tensor).unwrap();
                    (
                        codec.name().to_owned(),
                        codec.decode(&bytes, shape).unwrap(),
                    )
                })
                .collect();
            // GPU W2A8 keeps its scale outside the packed bytes (a bf16 vector entry).
            let gpu = gpu_w2a8::pack(&tensor).unwrap();
            back.push((
                "GPU W2A8".into(),
                gpu_w2a8::unpack(&gpu, shape, tensor.scale()).unwrap(),
            ));
            for (name, decoded) in back {
                let (packed, scale_bytes) = HF_PACKED
                    .encode_with_scale(&decoded, format, ScaleRounding::Exact)
                    .unwrap_or_else(|e| panic!("{name} {}: {e}", weight.name));
                assert_eq!(packed, weight.data, "{name} {}", weight.name);
                assert_eq!(scale_bytes, scale.data, "{name} {} scale", weight.name);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 7 * 9);
}
