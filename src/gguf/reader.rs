//! The GGUF reader: untrusted bytes in, validated zero-copy views out.
//!
//! [`GgufFile::parse`] runs every check of `spec/gguf-container.md` §9 V1-V18 before returning;
//! a `GgufFile` therefore only ever describes a structurally valid file. Counts are checked against
//! the bytes that remain before anything is allocated, all arithmetic on file-supplied numbers is
//! checked, and no slice is taken without a bounds check.

use super::limits::{
    Limits, DEFAULT_ALIGNMENT, HEADER_BYTES, MAX_DIMS, MAX_TENSOR_NAME, MIN_KV_BYTES,
    MIN_TENSOR_INFO_BYTES,
};
use super::types::{element_count, tensor_nbytes, GgmlType, SizeError};
use super::value::{parse_payload, Array, Cursor, ParseOptions, Value, ValueType};
use super::{keys, Error};
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

/// How tensor offsets are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Contiguity {
    /// Every tensor starts where the previous one ends, padded to the alignment (V16), as every
    /// upstream writer produces.
    #[default]
    Strict,
    /// Only bounds (V17) and non-overlap (V18), as the FORK/IK loaders check.
    Lenient,
}

/// Reader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Offset checking mode.
    pub contiguity: Contiguity,
    /// Parse arrays of arrays into the value model instead of failing with
    /// [`Error::NestedArray`]. No ggml loader accepts them; `bitnet-inspect` sets this only to
    /// show such a file and reports them as an error-level finding.
    pub allow_nested_arrays: bool,
    /// Require `general.architecture` (V9). On by default.
    pub require_architecture: bool,
    /// Size caps.
    pub limits: Limits,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            contiguity: Contiguity::Strict,
            allow_nested_arrays: false,
            require_architecture: true,
            limits: Limits::DEFAULT,
        }
    }
}

/// One metadata record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetaEntry<'a> {
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: Value<'a>,
    /// File offset where the record (its key length) starts.
    pub offset: u64,
}

/// One tensor-info record, validated and sized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// Tensor name (1..=63 bytes of UTF-8).
    pub name: String,
    /// Dims in GGUF order: `dims[0]` = ne0, the contiguous dimension (K for a weight matrix).
    pub dims: Vec<u64>,
    /// The type.
    pub ggml_type: GgmlType,
    /// Data offset relative to [`GgufFile::data_start`].
    pub offset: u64,
    /// Data size in bytes by the loader's rule (`spec/gguf-container.md` §8).
    pub byte_len: u64,
    /// File offset where this tensor-info record starts.
    pub info_offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn element_count(&self) -> u64 {
        element_count(&self.dims).unwrap_or(0)
    }

    /// Absolute byte range of the data in a file whose data section starts at `data_start`.
    pub fn absolute_range(&self, data_start: u64) -> Range<u64> {
        let start = data_start.saturating_add(self.offset);
        start..start.saturating_add(self.byte_len)
    }

    /// `(rows, cols)` = `(ne1, ne0)` for a 2-D tensor.
    pub fn matrix_shape(&self) -> Option<(u64, u64)> {
        match self.dims.as_slice() {
            [cols, rows] => Some((*rows, *cols)),
            _ => None,
        }
    }
}

/// Something odd in a file that is still readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadWarning {
    /// File offset.
    pub offset: u64,
    /// Key or tensor concerned.
    pub key: Option<String>,
    /// What is odd.
    pub message: String,
}

/// A parsed, validated GGUF file borrowing its bytes.
#[derive(Debug, Clone)]
pub struct GgufFile<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u64,
    metadata: Vec<MetaEntry<'a>>,
    key_index: HashMap<&'a str, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    infos_end: u64,
    data_start: u64,
    warnings: Vec<ReadWarning>,
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    x.checked_next_multiple_of(align)
}

impl<'a> GgufFile<'a> {
    /// Parses and validates with [`ReadOptions::default`] (strict).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse_with(bytes, &ReadOptions::default())
    }

    /// Parses and validates with explicit options.
    pub fn parse_with(bytes: &'a [u8], opts: &ReadOptions) -> Result<Self, Error> {
        let file_size = bytes.len() as u64;
        let mut cur = Cursor::new(bytes, 0);

        // V1-V3: header.
        let magic_bytes = cur.take(4, "magic")?;
        if magic_bytes != b"GGUF" {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic_bytes);
            return Err(Error::BadMagic { offset: 0, found });
        }
        let version = cur.u32("version")?;
        if version & 0xFFFF == 0 && version != 0 {
            return Err(Error::BigEndian { offset: 4, version });
        }
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion { offset: 4, version });
        }
        let n_tensors = cur.u64("tensor count")?;
        let n_kv = cur.u64("metadata count")?;
        let limits = &opts.limits;
        check_count("tensor count", 8, n_tensors, limits.max_tensor_count)?;
        check_count("metadata count", 16, n_kv, limits.max_kv_count)?;
        let body = file_size.saturating_sub(HEADER_BYTES);
        let needed = n_kv
            .saturating_mul(MIN_KV_BYTES)
            .saturating_add(n_tensors.saturating_mul(MIN_TENSOR_INFO_BYTES));
        if needed > body {
            return Err(Error::LimitExceeded {
                what: "metadata + tensor-info records (minimum bytes)",
                offset: 8,
                value: needed,
                limit: body,
            });
        }

        // V4-V7: metadata.
        let parse_opts = ParseOptions {
            allow_nested: opts.allow_nested_arrays,
            max_depth: limits.max_array_depth,
            max_string_len: limits.max_string_len,
            max_array_len: limits.max_array_len,
        };
        // n_kv is bounded by the file size above; still reserve conservatively.
        let mut metadata = Vec::with_capacity(n_kv.min(1024) as usize);
        let mut key_index: HashMap<&'a str, usize> =
            HashMap::with_capacity(n_kv.min(1024) as usize);
        let mut warnings = Vec::new();
        let mut bad_utf8 = Vec::new();
        for _ in 0..n_kv {
            let offset = cur.offset();
            let key_bytes = cur.string("metadata key", limits.max_string_len)?;
            if key_bytes.is_empty() {
                return Err(Error::EmptyKey { offset });
            }
            let key = std::str::from_utf8(key_bytes).map_err(|_| Error::InvalidUtf8 {
                offset: offset + 8,
                what: "key",
                key: None,
            })?;
            if let Some(&first) = key_index.get(key) {
                let first_offset = metadata
                    .get(first)
                    .map(|e: &MetaEntry<'a>| e.offset)
                    .unwrap_or(0);
                return Err(Error::DuplicateKey {
                    offset,
                    key: key.to_owned(),
                    first_offset,
                });
            }
            let type_at = cur.offset();
            let type_id = cur.u32("value type")?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
                offset: type_at,
                key: key.to_owned(),
                id: type_id,
            })?;
            bad_utf8.clear();
            let value = parse_payload(&mut cur, ty, key, 0, &parse_opts, &mut bad_utf8)?;
            if let Some(&at) = bad_utf8.first() {
                warnings.push(ReadWarning {
                    offset: at,
                    key: Some(key.to_owned()),
                    message: format!(
                        "{} string value(s) are not valid UTF-8 (spec V7)",
                        bad_utf8.len()
                    ),
                });
            }
            key_index.insert(key, metadata.len());
            metadata.push(MetaEntry { key, value, offset });
        }
        let metadata_end = cur.offset();

        // V8: alignment.
        let mut alignment = DEFAULT_ALIGNMENT;
        if let Some(entry) = key_index
            .get(keys::ALIGNMENT)
            .and_then(|&i| metadata.get(i))
        {
            match entry.value {
                Value::U32(v) if v != 0 && v.is_power_of_two() && v % 8 == 0 => {
                    alignment = u64::from(v)
                }
                Value::U32(v) => {
                    return Err(Error::BadAlignment {
                        offset: entry.offset,
                        value: v,
                    })
                }
                other => {
                    return Err(Error::WrongType {
                        offset: entry.offset,
                        key: keys::ALIGNMENT.to_owned(),
                        expected: "UINT32",
                        found: other.value_type().name(),
                    })
                }
            }
        }

        // V9: architecture.
        match key_index
            .get(keys::ARCHITECTURE)
            .and_then(|&i| metadata.get(i))
        {
            Some(MetaEntry {
                value: Value::String(_),
                ..
            }) => {}
            Some(entry) => {
                return Err(Error::WrongType {
                    offset: entry.offset,
                    key: keys::ARCHITECTURE.to_owned(),
                    expected: "STRING",
                    found: entry.value.value_type().name(),
                })
            }
            None if opts.require_architecture => {
                return Err(Error::MissingArchitecture {
                    offset: metadata_end,
                })
            }
            None => {}
        }

        // V10-V15: tensor infos.
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors.min(4096) as usize);
        let mut tensor_index: HashMap<String, usize> =
            HashMap::with_capacity(n_tensors.min(4096) as usize);
        for _ in 0..n_tensors {
            let info_offset = cur.offset();
            let name_bytes = cur.string("tensor name", limits.max_string_len)?;
            if name_bytes.is_empty() || name_bytes.len() > MAX_TENSOR_NAME {
                return Err(Error::TensorNameLength {
                    offset: info_offset,
                    name: String::from_utf8_lossy(name_bytes).into_owned(),
                    len: name_bytes.len() as u64,
                });
            }
            let name = std::str::from_utf8(name_bytes)
                .map_err(|_| Error::InvalidUtf8 {
                    offset: info_offset + 8,
                    what: "tensor name",
                    key: None,
                })?
                .to_owned();
            if tensor_index.contains_key(&name) {
                return Err(Error::DuplicateTensor {
                    offset: info_offset,
                    name,
                });
            }
            let ndims_at = cur.offset();
            let n_dims = cur.u32("n_dims")?;
            if n_dims == 0 || n_dims as usize > MAX_DIMS {
                return Err(Error::BadDimCount {
                    offset: ndims_at,
                    name,
                    n_dims,
                });
            }
            let dims_at = cur.offset();
            let mut dims = Vec::with_capacity(n_dims as usize);
            for axis in 0..n_dims as usize {
                let at = cur.offset();
                let d = cur.u64("dimension")?;
                if d == 0 {
                    return Err(Error::ZeroDim {
                        offset: at,
                        name,
                        axis,
                    });
                }
                dims.push(d);
            }
            if element_count(&dims).is_none() {
                return Err(Error::ElementCountOverflow {
                    offset: dims_at,
                    name,
                });
            }
            let type_at = cur.offset();
            let type_id = cur.u32("ggml type")?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType {
                offset: type_at,
                name: name.clone(),
                id: type_id,
            })?;
            let byte_len = match tensor_nbytes(ggml_type, &dims) {
                Ok(n) => n,
                Err(SizeError::NotAFileType) => {
                    return Err(Error::MemoryOnlyType {
                        offset: type_at,
                        name,
                        ty: ggml_type,
                    })
                }
                Err(SizeError::Overflow) => {
                    return Err(Error::ElementCountOverflow {
                        offset: dims_at,
                        name,
                    })
                }
                Err(e) => {
                    return Err(Error::BadShapeForType {
                        offset: info_offset,
                        name,
                        dims,
                        ty: ggml_type,
                        rule: e.to_string(),
                    })
                }
            };
            let offset_at = cur.offset();
            let offset = cur.u64("tensor data offset")?;
            if offset % alignment != 0 {
                return Err(Error::MisalignedOffset {
                    offset: offset_at,
                    name,
                    data_offset: offset,
                    alignment,
                });
            }
            tensor_index.insert(name.clone(), tensors.len());
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                byte_len,
                info_offset,
            });
        }
        let infos_end = cur.offset();
        let data_start = align_up(infos_end, alignment).unwrap_or(u64::MAX);

        // V16-V18: placement.
        let mut expected = 0u64;
        for t in &tensors {
            let offset_field =
                t.info_offset + 8 + t.name.len() as u64 + 4 + 8 * t.dims.len() as u64 + 4;
            if opts.contiguity == Contiguity::Strict && t.offset != expected {
                return Err(Error::NotContiguous {
                    offset: offset_field,
                    name: t.name.clone(),
                    expected,
                    found: t.offset,
                });
            }
            let start = data_start.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.byte_len));
            match (start, end) {
                (Some(_), Some(e)) if e <= file_size => {}
                _ => {
                    return Err(Error::OutOfBounds {
                        offset: t.info_offset,
                        name: t.name.clone(),
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        file_size,
                    })
                }
            }
            expected = t
                .offset
                .checked_add(t.byte_len)
                .and_then(|e| align_up(e, alignment))
                .unwrap_or(u64::MAX);
        }
        if opts.contiguity == Contiguity::Lenient {
            let mut order: Vec<usize> = (0..tensors.len()).collect();
            order.sort_by_key(|&i| tensors[i].offset);
            for pair in order.windows(2) {
                let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
                if a.offset + a.byte_len > b.offset {
                    return Err(Error::Overlap {
                        offset: b.info_offset,
                        name: b.name.clone(),
                        other: a.name.clone(),
                    });
                }
            }
        }

        Ok(GgufFile {
            bytes,
            version,
            alignment,
            metadata,
            key_index,
            tensors,
            tensor_index,
            infos_end,
            data_start,
            warnings,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// File size in bytes.
    pub fn file_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment in effect (`general.alignment` or 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Metadata records in file order.
    pub fn metadata(&self) -> &[MetaEntry<'a>] {
        &self.metadata
    }

    /// The record for `key`.
    pub fn entry(&self, key: &str) -> Option<&MetaEntry<'a>> {
        self.key_index.get(key).and_then(|&i| self.metadata.get(i))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entry(key).map(|e| &e.value)
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: ValueType,
        pick: impl Fn(&Value<'a>) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        pick(&entry.value)
            .map(Some)
            .ok_or_else(|| Error::WrongType {
                offset: entry.offset,
                key: key.to_owned(),
                expected: expected.name(),
                found: entry.value.value_type().name(),
            })
    }

    /// A STRING value (UTF-8). `Ok(None)` when absent, [`Error::WrongType`] on another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&'a str>, Error> {
        self.typed(key, ValueType::String, |v| v.as_str())
    }

    /// A UINT32 value, exactly that type (as llama.cpp requires, V21).
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, Error> {
        self.typed(key, ValueType::U32, |v| match v {
            Value::U32(x) => Some(*x),
            _ => None,
        })
    }

    /// A FLOAT32 value, exactly that type.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, Error> {
        self.typed(key, ValueType::F32, |v| match v {
            Value::F32(x) => Some(*x),
            _ => None,
        })
    }

    /// A BOOL value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.typed(key, ValueType::Bool, |v| match v {
            Value::Bool(x) => Some(*x),
            _ => None,
        })
    }

    /// An ARRAY value.
    pub fn get_array(&self, key: &str) -> Result<Option<Array<'a>>, Error> {
        self.typed(key, ValueType::Array, |v| v.as_array().copied())
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&'a str> {
        self.get(keys::ARCHITECTURE).and_then(|v| v.as_str())
    }

    /// The key `<architecture>.<suffix>` (e.g. `arch_key("block_count")`).
    pub fn arch_key(&self, suffix: &str) -> Option<String> {
        self.architecture().map(|a| keys::arch_key(a, suffix))
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The data bytes of `info` (zero-copy). Fails only for an info that does not belong to this
    /// file.
    pub fn tensor_data(&self, info: &TensorInfo) -> Result<&'a [u8], Error> {
        let range = info.absolute_range(self.data_start);
        let out_of_bounds = || Error::OutOfBounds {
            offset: info.info_offset,
            name: info.name.clone(),
            start: range.start,
            end: range.end,
            file_size: self.file_size(),
        };
        let start = usize::try_from(range.start).map_err(|_| out_of_bounds())?;
        let end = usize::try_from(range.end).map_err(|_| out_of_bounds())?;
        self.bytes.get(start..end).ok_or_else(out_of_bounds)
    }

    /// End of the last tensor-info record (start of the padding before the data).
    pub fn infos_end(&self) -> u64 {
        self.infos_end
    }

    /// Absolute offset of the data section (a multiple of the alignment).
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// Non-fatal oddities found while parsing.
    pub fn warnings(&self) -> &[ReadWarning] {
        &self.warnings
    }

    /// Payload checks V19 (no NaN/Inf in F32/F16/BF16) and V20 (I2_S: no code 3, scale finite
    /// and >= 0). Returns every failure, at most one per tensor.
    pub fn validate_data(&self) -> Vec<Error> {
        let mut errors = Vec::new();
        for t in &self.tensors {
            let Ok(data) = self.tensor_data(t) else {
                continue;
            };
            let base = self.data_start + t.offset;
            let non_finite = |index: usize, width: usize| Error::NonFinite {
                offset: base + (index * width) as u64,
                name: t.name.clone(),
                index: index as u64,
            };
            match t.ggml_type {
                GgmlType::F32 => {
                    if let Some(i) = data
                        .chunks_exact(4)
                        .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
                    {
                        errors.push(non_finite(i, 4));
                    }
                }
                GgmlType::F16 => {
                    if let Some(i) = data
                        .chunks_exact(2)
                        .position(|c| (u16::from_le_bytes([c[0], c[1]]) & 0x7C00) == 0x7C00)
                    {
                        errors.push(non_finite(i, 2));
                    }
                }
                GgmlType::BF16 => {
                    if let Some(i) = data
                        .chunks_exact(2)
                        .position(|c| (u16::from_le_bytes([c[0], c[1]]) & 0x7F80) == 0x7F80)
                    {
                        errors.push(non_finite(i, 2));
                    }
                }
                GgmlType::I2_S => {
                    let codes_len = data.len().saturating_sub(32);
                    let codes = &data[..codes_len];
                    // A byte holds a code 3 iff some 2-bit pair has both bits set.
                    if let Some(i) = codes
                        .iter()
                        .position(|&b| (b & (b >> 1) & 0b0101_0101) != 0)
                    {
                        errors.push(Error::InvalidI2sCode {
                            offset: base + i as u64,
                            name: t.name.clone(),
                        });
                    } else if let Some(s) = data.get(codes_len..codes_len + 4) {
                        let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                        if !scale.is_finite() || scale < 0.0 {
                            errors.push(Error::InvalidI2sScale {
                                offset: base + codes_len as u64,
                                name: t.name.clone(),
                                scale,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        errors
    }
}

fn check_count(what: &'static str, offset: u64, value: u64, limit: u64) -> Result<(), Error> {
    let limit = limit.min(i64::MAX as u64);
    if value > limit {
        return Err(Error::LimitExceeded {
            what,
            offset,
            value,
            limit,
        });
    }
    Ok(())
}

/// A read-only memory map of a file (or nothing, for an empty file, which cannot be mapped).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl std::ops::Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl MappedFile {
    /// Lets the kernel drop the resident pages of `range` (they are read again from the file
    /// if touched). Converters call it after a tensor is consumed so that the resident set of
    /// a big input stays small. Out-of-range parts are ignored.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let Some(map) = &self.map else { return };
        let end = range.end.min(map.len());
        if range.start >= end {
            return;
        }
        // SAFETY: the map is a read-only, file-backed mapping; MADV_DONTNEED only drops clean
        // pages, which are re-read from the file on the next access, so no data changes.
        let _ = unsafe {
            map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                end - range.start,
            )
        };
    }
}

/// Maps `path` read-only. Parse the result with [`GgufFile::parse`]:
///
/// ```no_run
/// # fn main() -> Result<(), bitnet_gguf::gguf::Error> {
/// let map = bitnet_gguf::gguf::map_file("model.gguf".as_ref())?;
/// let file = bitnet_gguf::gguf::GgufFile::parse(&map)?;
/// println!("{} tensors", file.tensors().len());
/// # Ok(()) }
/// ```
pub fn map_file(path: &Path) -> Result<MappedFile, Error> {
    let io_err = io_error(path);
    let (file, len) = open_with_len(path)?;
    if len == 0 {
        return Ok(MappedFile { map: None });
    }
    // SAFETY: the map is read-only; the usual caveat of file maps applies (another process
    // truncating the file while it is mapped raises SIGBUS). Every access is bounds-checked
    // against the length seen at map time.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    Ok(MappedFile { map: Some(map) })
}

/// Wraps an I/O error on `path` into [`Error::Io`].
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + Copy + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens `path` and reads its length.
fn open_with_len(path: &Path) -> Result<(std::fs::File, u64), Error> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    Ok((file, len))
}

/// Reads all of `path` into anonymous memory that the kernel is asked to back with huge pages
/// (on Linux; elsewhere it is ordinary memory), read-only once filled. Parse the result with
/// [`GgufFile::parse`], as for [`map_file`].
///
/// A runtime that streams every weight once per token reads such a copy a few percent faster
/// than the file's page-cache pages (`docs/PERFORMANCE.md`, "Issue 6, sixth session"), at the
/// cost of the copy (0.15–2 s for 1.2 GB already in the page cache) and of a second copy of
/// the file in memory while the page cache still holds the first. Parts of the file are read by
/// several threads at once: the page faults of the fresh memory then run in parallel too.
pub fn read_file(path: &Path) -> Result<MappedFile, Error> {
    let io_err = io_error(path);
    let (file, len) = open_with_len(path)?;
    if len == 0 {
        return Ok(MappedFile { map: None });
    }
    let len = usize::try_from(len).map_err(|_| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("{len} bytes do not fit the address space"),
        ))
    })?;
    let mut anon = memmap2::MmapMut::map_anon(len).map_err(io_err)?;
    #[cfg(target_os = "linux")]
    // Only advice: without transparent huge pages the copy is ordinary memory.
    let _ = anon.advise(memmap2::Advice::HugePage);
    // A file that shrank since its length was read is an error of `read_exact*`, not a short
    // buffer.
    read_parts(&file, &mut anon).map_err(io_err)?;
    let map = anon.make_read_only().map_err(io_err)?;
    Ok(MappedFile { map: Some(map) })
}

/// Fills `buf` from the start of `file`, in parts of whole huge pages (2 MiB) read by up to 8
/// threads.
#[cfg(unix)]
fn read_parts(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    const HUGE_PAGE: usize = 2 << 20;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let part = buf.len().div_ceil(threads).div_ceil(HUGE_PAGE) * HUGE_PAGE;
    std::thread::scope(|s| {
        let readers: Vec<_> = buf
            .chunks_mut(part)
            .enumerate()
            .map(|(i, chunk)| s.spawn(move || file.read_exact_at(chunk, (i * part) as u64)))
            .collect();
        readers
            .into_iter()
            .try_for_each(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

#[cfg(not(unix))]
fn read_parts(mut file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    file.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_pages_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let map = map_file(&path).unwrap();
        assert_eq!(&map[..], &data[..]);
        map.release(100..9000);
        map.release(9000..usize::MAX);
        assert_eq!(&map[..], &data[..]);
    }

    #[test]
    fn read_file_holds_the_same_bytes_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // Sizes around the 2 MiB parts the readers split at, and none at all.
        for len in [0usize, 1, 4095, (2 << 20) - 1, 2 << 20, (5 << 20) + 17] {
            let path = dir.path().join(format!("{len}.bin"));
            let data: Vec<u8> = (0..len as u64).map(|i| (i * 7 % 253) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let read = read_file(&path).unwrap();
            assert_eq!(&read[..], &data[..], "{len} bytes");
        }
        let missing = dir.path().join("missing.gguf");
        let err = read_file(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.gguf"), "{err}");
    }

    #[test]
    fn empty_and_short_inputs_are_clean_errors() {
        assert!(matches!(
            GgufFile::parse(b""),
            Err(Error::Truncated { offset: 0, .. })
        ));
        assert!(matches!(
            GgufFile::parse(b"GGUF\x03\0\0\0"),
            Err(Error::Truncated { offset: 8, .. })
        ));
        assert!(matches!(
            GgufFile::parse(b"GGUF\0\0\0\x03"),
            Err(Error::BigEndian { .. })
        ));
    }
}
