//! A streaming safetensors writer: the header is computed from the tensor list first, then each
//! tensor's bytes are produced by a callback straight into the file, so no tensor needs to be
//! fully in memory. Output is atomic: a temporary file beside the target, fsync, rename.

use super::Error;
use crate::io::{AtomicFile, CountingWriter};
use safetensors::Dtype;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name, dtype and shape of one tensor to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorHeader {
    /// Tensor name.
    pub name: String,
    /// safetensors dtype.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

impl TensorHeader {
    /// A header.
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> Self {
        Self {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// Data bytes (`None` on overflow).
    pub fn byte_len(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            })
    }
}

/// The file prefix: 8-byte little-endian header length, then the JSON header padded with spaces
/// to a multiple of 8. Tensors are laid out contiguously in the order given.
pub fn safetensors_header(
    tensors: &[TensorHeader],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, Error> {
    let mut obj = Map::new();
    if !metadata.is_empty() {
        obj.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0u64;
    for t in tensors {
        let len = t.byte_len().ok_or_else(|| Error::Unsupported {
            path: PathBuf::new(),
            what: format!("tensor `{}` size overflows", t.name),
        })?;
        let end = offset + len;
        if obj.contains_key(&t.name) {
            return Err(Error::DuplicateTensor {
                tensor: t.name.clone(),
                first: PathBuf::new(),
                second: PathBuf::new(),
            });
        }
        obj.insert(
            t.name.clone(),
            json!({"dtype": dtype_name(t.dtype), "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&Value::Object(obj)).map_err(|source| Error::Json {
        path: PathBuf::new(),
        source,
    })?;
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    Ok(out)
}

/// safetensors' spelling of a dtype.
pub fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

/// Writes a safetensors file atomically. `fill(i, header, out)` must write exactly
/// `header.byte_len()` bytes of tensor `i` (little-endian).
pub fn write_safetensors<F>(
    path: &Path,
    tensors: &[TensorHeader],
    metadata: &BTreeMap<String, String>,
    mut fill: F,
) -> Result<(), Error>
where
    F: FnMut(usize, &TensorHeader, &mut dyn Write) -> Result<(), Error>,
{
    let prefix = safetensors_header(tensors, metadata)?;
    let mut out = AtomicFile::create(path).map_err(|e| Error::io(path, e))?;
    out.write_all(&prefix).map_err(|e| Error::io(path, e))?;
    for (i, t) in tensors.iter().enumerate() {
        let mut counter = CountingWriter::new(&mut out);
        fill(i, t, &mut counter)?;
        let expected = t.byte_len().unwrap_or(u64::MAX);
        if counter.count() != expected {
            return Err(Error::WriterLength {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                expected,
                found: counter.count(),
            });
        }
    }
    out.commit().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let tensors = vec![
            TensorHeader::new("a", Dtype::U8, vec![2, 3]),
            TensorHeader::new("b", Dtype::BF16, vec![1]),
        ];
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write_safetensors(&path, &tensors, &meta, |i, _, out| {
            let bytes: &[u8] = if i == 0 {
                &[1, 2, 3, 4, 5, 6]
            } else {
                &[0x80, 0x3f]
            };
            out.write_all(bytes).map_err(|e| Error::io("x", e))
        })
        .unwrap();
        let data = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&data).unwrap();
        assert_eq!(st.tensor("a").unwrap().data(), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(st.tensor("b").unwrap().dtype(), Dtype::BF16);
    }

    #[test]
    fn short_write_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let tensors = vec![TensorHeader::new("a", Dtype::U8, vec![4])];
        let err = write_safetensors(&path, &tensors, &BTreeMap::new(), |_, _, out| {
            out.write_all(&[1]).map_err(|e| Error::io("x", e))
        })
        .unwrap_err();
        assert!(matches!(err, Error::WriterLength { found: 1, .. }));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
