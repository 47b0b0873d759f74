//! The streaming GGUF writer (`spec/gguf-container.md` §10).
//!
//! [`GgufWriter::new`] validates the whole plan (keys, types, names, dims, sizes), computes every
//! offset once, and writes the header, the metadata, the tensor infos and the padding before the
//! data. Then [`GgufWriter::write_tensor`] must be called once per tensor, in plan order, with
//! exactly the planned number of bytes; each is followed by zero padding to the alignment
//! (including the last, as upstream writers do). [`GgufWriter::finish`] fails if a tensor is
//! missing. Use [`crate::io::AtomicFile`] as the sink so that a failed run leaves no file behind.

use super::limits::{DEFAULT_ALIGNMENT, MAX_DIMS, MAX_TENSOR_NAME};
use super::reader::GgufFile;
use super::types::{tensor_nbytes, GgmlType};
use super::value::{encode_str, MetaValue, Value, ValueType};
use super::{keys, Error};
use crate::io::CountingWriter;
use std::collections::HashMap;
use std::io::Write;

/// Ordered metadata for writing. Keys are unique; [`Metadata::set`] replaces in place, like the
/// C writer's `gguf_set_val_*`, so key order can imitate upstream files exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, ValueType, Vec<u8>)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record of `file`, byte for byte, in file order.
    pub fn from_file(file: &GgufFile<'_>) -> Self {
        let mut m = Self::new();
        for e in file.metadata() {
            // Keys of a parsed file are unique and non-empty, so this cannot fail.
            let _ = m.push_value(e.key, &e.value);
        }
        m
    }

    fn insert(
        &mut self,
        key: String,
        ty: ValueType,
        bytes: Vec<u8>,
        replace: bool,
    ) -> Result<(), Error> {
        if key.is_empty() || key.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidForWrite {
                what: "key",
                name: key,
                why: "keys must be 1..=65535 bytes".into(),
            });
        }
        match self.index.get(&key) {
            Some(&i) if replace => {
                self.entries[i] = (key, ty, bytes);
                Ok(())
            }
            Some(_) => Err(Error::InvalidForWrite {
                what: "key",
                name: key,
                why: "duplicate key".into(),
            }),
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, ty, bytes));
                Ok(())
            }
        }
    }

    /// Appends `key`; fails if it exists.
    pub fn push(
        &mut self,
        key: impl Into<String>,
        value: impl Into<MetaValue>,
    ) -> Result<(), Error> {
        let value = value.into();
        let mut bytes = Vec::new();
        value.encode_into(&mut bytes);
        self.insert(key.into(), value.value_type(), bytes, false)
    }

    /// Replaces `key` in place if present, else appends it.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<MetaValue>) {
        let value = value.into();
        let mut bytes = Vec::new();
        value.encode_into(&mut bytes);
        // Only an empty or over-long key fails; set() is for known keys.
        let _ = self.insert(key.into(), value.value_type(), bytes, true);
    }

    /// Appends a value viewed in another file, byte for byte (nested arrays included).
    pub fn push_value(&mut self, key: &str, value: &Value<'_>) -> Result<(), Error> {
        let mut bytes = Vec::new();
        value.encode_into(&mut bytes);
        self.insert(key.to_owned(), value.value_type(), bytes, false)
    }

    /// Removes `key`, keeping the order of the rest.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some(i) = self.index.remove(key) else {
            return false;
        };
        self.entries.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        true
    }

    /// True if `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _, _)| k.as_str())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn alignment(&self) -> Result<u64, Error> {
        let Some(&i) = self.index.get(keys::ALIGNMENT) else {
            return Ok(DEFAULT_ALIGNMENT);
        };
        let (_, ty, bytes) = &self.entries[i];
        let bad = |why: &str| Error::InvalidForWrite {
            what: "key",
            name: keys::ALIGNMENT.into(),
            why: why.into(),
        };
        if *ty != ValueType::U32 || bytes.len() != 4 {
            return Err(bad("must be UINT32"));
        }
        let v = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if v == 0 || !v.is_power_of_two() || v % 8 != 0 {
            return Err(bad("must be a power of two and a multiple of 8"));
        }
        Ok(u64::from(v))
    }
}

/// A tensor to be written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorDesc {
    /// Name, 1..=63 bytes.
    pub name: String,
    /// Dims in GGUF order (ne0 = contiguous dimension first).
    pub dims: Vec<u64>,
    /// Type.
    pub ggml_type: GgmlType,
}

impl TensorDesc {
    /// A descriptor.
    pub fn new(name: impl Into<String>, dims: Vec<u64>, ggml_type: GgmlType) -> Self {
        Self {
            name: name.into(),
            dims,
            ggml_type,
        }
    }

    /// Bytes of data this tensor must be given, by the loader rule of its type.
    pub fn byte_len(&self) -> Result<u64, Error> {
        if self.dims.is_empty() || self.dims.len() > MAX_DIMS {
            return Err(self.invalid(format!("needs 1..={MAX_DIMS} dims")));
        }
        tensor_nbytes(self.ggml_type, &self.dims).map_err(|e| self.invalid(e.to_string()))
    }

    fn invalid(&self, why: String) -> Error {
        Error::InvalidForWrite {
            what: "tensor",
            name: self.name.clone(),
            why,
        }
    }
}

/// Where a planned tensor goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    /// The descriptor.
    pub desc: TensorDesc,
    /// Offset relative to the data section.
    pub offset: u64,
    /// Bytes of data (before padding).
    pub byte_len: u64,
}

/// Streams one GGUF v3 file: plan and header on construction, then tensor data in order.
#[derive(Debug)]
pub struct GgufWriter<W: Write> {
    out: W,
    plan: Vec<PlannedTensor>,
    next: usize,
    alignment: u64,
    data_start: u64,
}

fn write_zeros<W: Write>(out: &mut W, n: u64) -> Result<(), Error> {
    const ZEROS: [u8; 256] = [0; 256];
    let mut left = n;
    while left > 0 {
        let chunk = left.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..chunk])?;
        left -= chunk as u64;
    }
    Ok(())
}

fn pad_len(len: u64, alignment: u64) -> u64 {
    (alignment - len % alignment) % alignment
}

impl<W: Write> GgufWriter<W> {
    /// Validates the plan and writes everything up to the start of the tensor data.
    pub fn new(mut out: W, metadata: &Metadata, tensors: &[TensorDesc]) -> Result<Self, Error> {
        let alignment = metadata.alignment()?;
        let mut plan = Vec::with_capacity(tensors.len());
        let mut names = HashMap::with_capacity(tensors.len());
        let mut offset = 0u64;
        for t in tensors {
            if t.name.is_empty() || t.name.len() > MAX_TENSOR_NAME {
                return Err(t.invalid(format!("names must be 1..={MAX_TENSOR_NAME} bytes")));
            }
            if names.insert(t.name.as_str(), ()).is_some() {
                return Err(t.invalid("duplicate tensor name".into()));
            }
            let byte_len = t.byte_len()?;
            plan.push(PlannedTensor {
                desc: t.clone(),
                offset,
                byte_len,
            });
            offset = offset
                .checked_add(byte_len)
                .and_then(|e| e.checked_next_multiple_of(alignment))
                .ok_or_else(|| t.invalid("data section overflows".into()))?;
        }

        let mut head = Vec::with_capacity(4096);
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(plan.len() as u64).to_le_bytes());
        head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, ty, bytes) in &metadata.entries {
            encode_str(&mut head, key.as_bytes());
            head.extend_from_slice(&ty.id().to_le_bytes());
            head.extend_from_slice(bytes);
        }
        for p in &plan {
            encode_str(&mut head, p.desc.name.as_bytes());
            head.extend_from_slice(&(p.desc.dims.len() as u32).to_le_bytes());
            for d in &p.desc.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&p.desc.ggml_type.id().to_le_bytes());
            head.extend_from_slice(&p.offset.to_le_bytes());
        }
        let pad = pad_len(head.len() as u64, alignment);
        head.resize(head.len() + pad as usize, 0);
        out.write_all(&head)?;
        Ok(Self {
            out,
            data_start: head.len() as u64,
            plan,
            next: 0,
            alignment,
        })
    }

    /// The layout: every tensor with its offset and size.
    pub fn plan(&self) -> &[PlannedTensor] {
        &self.plan
    }

    /// Absolute offset of the data section.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// The tensor whose data is expected next.
    pub fn next_tensor(&self) -> Option<&TensorDesc> {
        self.plan.get(self.next).map(|p| &p.desc)
    }

    /// Writes the data of the next tensor, which must be `name` and exactly its planned size,
    /// then the zero padding.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        let Some(p) = self.plan.get(self.next) else {
            return Err(Error::WriterOrder {
                expected: "no more tensors".into(),
                found: format!("tensor {name:?}"),
            });
        };
        if p.desc.name != name {
            return Err(Error::WriterOrder {
                expected: format!("tensor {:?}", p.desc.name),
                found: format!("tensor {name:?}"),
            });
        }
        if data.len() as u64 != p.byte_len {
            return Err(Error::WriterOrder {
                expected: format!("{} bytes for {name:?}", p.byte_len),
                found: format!("{} bytes", data.len()),
            });
        }
        self.out.write_all(data)?;
        write_zeros(&mut self.out, pad_len(p.byte_len, self.alignment))?;
        self.next += 1;
        Ok(())
    }

    /// Like [`GgufWriter::write_tensor`], but `fill` writes the data straight into the sink
    /// (for tensors too big to hold in memory twice); it must write exactly the planned size.
    pub fn write_tensor_streamed(
        &mut self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let Some(p) = self.plan.get(self.next) else {
            return Err(Error::WriterOrder {
                expected: "no more tensors".into(),
                found: format!("tensor {name:?}"),
            });
        };
        if p.desc.name != name {
            return Err(Error::WriterOrder {
                expected: format!("tensor {:?}", p.desc.name),
                found: format!("tensor {name:?}"),
            });
        }
        let expected = p.byte_len;
        let mut counting = CountingWriter::new(&mut self.out);
        fill(&mut counting)?;
        if counting.count() != expected {
            return Err(Error::WriterOrder {
                expected: format!("{expected} bytes for {name:?}"),
                found: format!("{} bytes", counting.count()),
            });
        }
        write_zeros(&mut self.out, pad_len(expected, self.alignment))?;
        self.next += 1;
        Ok(())
    }

    /// Checks that every tensor was written, flushes, and returns the sink.
    pub fn finish(mut self) -> Result<W, Error> {
        if let Some(p) = self.plan.get(self.next) {
            return Err(Error::WriterOrder {
                expected: format!("tensor {:?}", p.desc.name),
                found: "finish".into(),
            });
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes `file` again through the writer (metadata bytes, tensor infos and data copied). For a
/// v3 file with zero padding this reproduces the input byte for byte.
pub fn rewrite<W: Write>(file: &GgufFile<'_>, out: W) -> Result<W, Error> {
    let metadata = Metadata::from_file(file);
    let descs: Vec<TensorDesc> = file
        .tensors()
        .iter()
        .map(|t| TensorDesc::new(t.name.clone(), t.dims.clone(), t.ggml_type))
        .collect();
    let mut w = GgufWriter::new(out, &metadata, &descs)?;
    for t in file.tensors() {
        w.write_tensor(&t.name, file.tensor_data(t)?)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_enforces_order_and_sizes() {
        let mut m = Metadata::new();
        m.push(keys::ARCHITECTURE, "llama").unwrap();
        assert!(m.push(keys::ARCHITECTURE, "x").is_err());
        let t = [
            TensorDesc::new("a", vec![4], GgmlType::F32),
            TensorDesc::new("b", vec![2], GgmlType::F16),
        ];
        let mut w = GgufWriter::new(Vec::new(), &m, &t).unwrap();
        assert!(w.write_tensor("b", &[0; 4]).is_err());
        assert!(w.write_tensor("a", &[0; 15]).is_err());
        w.write_tensor("a", &[0; 16]).unwrap();
        let w2 = w;
        let out = {
            let mut w2 = w2;
            w2.write_tensor("b", &[0; 4]).unwrap();
            w2.finish().unwrap()
        };
        let f = GgufFile::parse(&out).unwrap();
        assert_eq!(f.tensors()[1].offset, 32);
        assert_eq!(out.len() as u64, f.data_start() + 64);
    }

    #[test]
    fn streamed_tensor_equals_buffered_and_checks_its_length() {
        let mut m = Metadata::new();
        m.push(keys::ARCHITECTURE, "llama").unwrap();
        let t = [TensorDesc::new("a", vec![3], GgmlType::F32)];
        let data: Vec<u8> = (0..12).collect();
        let mut buffered = GgufWriter::new(Vec::new(), &m, &t).unwrap();
        buffered.write_tensor("a", &data).unwrap();
        let mut streamed = GgufWriter::new(Vec::new(), &m, &t).unwrap();
        streamed
            .write_tensor_streamed("a", |out| {
                out.write_all(&data[..5])?;
                out.write_all(&data[5..])
            })
            .unwrap();
        assert_eq!(streamed.finish().unwrap(), buffered.finish().unwrap());
        let mut short = GgufWriter::new(Vec::new(), &m, &t).unwrap();
        let err = short.write_tensor_streamed("a", |out| out.write_all(&data[..8]));
        assert!(matches!(err, Err(Error::WriterOrder { .. })));
    }

    #[test]
    fn finish_fails_when_a_tensor_is_missing() {
        let mut m = Metadata::new();
        m.push(keys::ARCHITECTURE, "llama").unwrap();
        let t = [TensorDesc::new("a", vec![4], GgmlType::F32)];
        let w = GgufWriter::new(Vec::new(), &m, &t).unwrap();
        assert!(matches!(w.finish(), Err(Error::WriterOrder { .. })));
    }

    #[test]
    fn set_replaces_in_place() {
        let mut m = Metadata::new();
        m.push("a", 1u32).unwrap();
        m.push("b", 2u32).unwrap();
        m.set("a", 40u32);
        m.set("c", 2u32);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(m.remove("b"));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "c"]);
    }
}
