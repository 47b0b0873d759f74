//! Metadata values: the borrowed view the reader produces ([`Value`]), the owned form writers
//! build ([`MetaValue`]), and their byte encoding (`spec/gguf-container.md` §4).
//!
//! Nested arrays (element type ARRAY) are representable so that a file holding them can be shown,
//! but the reader rejects them unless [`super::ReadOptions::allow_nested_arrays`] is set, because
//! every ggml loader aborts on them. The writer never emits them (a [`MetaArray`] cannot nest).

use super::Error;
use std::fmt;

/// A metadata value type id (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// 0
    U8 = 0,
    /// 1
    I8 = 1,
    /// 2
    U16 = 2,
    /// 3
    I16 = 3,
    /// 4
    U32 = 4,
    /// 5
    I32 = 5,
    /// 6
    F32 = 6,
    /// 7
    Bool = 7,
    /// 8
    String = 8,
    /// 9
    Array = 9,
    /// 10
    U64 = 10,
    /// 11
    I64 = 11,
    /// 12
    F64 = 12,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The type with this id, if it is one of 0..=12.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Self::ALL.get(id as usize).copied()
    }

    /// The id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// gguf-py's name (`"UINT32"`, `"STRING"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "UINT8",
            ValueType::I8 => "INT8",
            ValueType::U16 => "UINT16",
            ValueType::I16 => "INT16",
            ValueType::U32 => "UINT32",
            ValueType::I32 => "INT32",
            ValueType::F32 => "FLOAT32",
            ValueType::Bool => "BOOL",
            ValueType::String => "STRING",
            ValueType::Array => "ARRAY",
            ValueType::U64 => "UINT64",
            ValueType::I64 => "INT64",
            ValueType::F64 => "FLOAT64",
        }
    }

    /// Encoded size of one value, for fixed-size types.
    pub fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string as stored: bytes that are UTF-8 for keys and tensor names, and usually (but not
/// guaranteed, see [`super::GgufFile::warnings`]) for values.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgufStr<'a>(pub &'a [u8]);

impl<'a> GgufStr<'a> {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The string, if it is UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }

    /// The string with invalid sequences replaced.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.0).into_owned()
    }
}

impl fmt::Debug for GgufStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.0), f)
    }
}

/// A metadata value viewed in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// UINT8
    U8(u8),
    /// INT8
    I8(i8),
    /// UINT16
    U16(u16),
    /// INT16
    I16(i16),
    /// UINT32
    U32(u32),
    /// INT32
    I32(i32),
    /// FLOAT32
    F32(f32),
    /// BOOL
    Bool(bool),
    /// STRING
    String(GgufStr<'a>),
    /// ARRAY
    Array(Array<'a>),
    /// UINT64
    U64(u64),
    /// INT64
    I64(i64),
    /// FLOAT64
    F64(f64),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The string, if this is a UTF-8 STRING.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::String(s) => s.as_str(),
            _ => None,
        }
    }

    /// The array, if this is an ARRAY.
    pub fn as_array(&self) -> Option<&Array<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Any integer type widened to i128 (for display and loose comparisons).
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// Appends the encoded value (without the leading type id) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match *self {
            Value::U8(v) => out.push(v),
            Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(v)),
            Value::String(s) => encode_str(out, s.0),
            Value::Array(a) => {
                out.extend_from_slice(&a.elem_type.id().to_le_bytes());
                out.extend_from_slice(&a.len.to_le_bytes());
                out.extend_from_slice(a.raw);
            }
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }

    /// An owned copy. Strings that are not UTF-8 are converted lossily; nested arrays (which
    /// [`MetaValue`] cannot hold) give `None`.
    pub fn to_meta(&self) -> Option<MetaValue> {
        Some(match *self {
            Value::U8(v) => MetaValue::U8(v),
            Value::I8(v) => MetaValue::I8(v),
            Value::U16(v) => MetaValue::U16(v),
            Value::I16(v) => MetaValue::I16(v),
            Value::U32(v) => MetaValue::U32(v),
            Value::I32(v) => MetaValue::I32(v),
            Value::F32(v) => MetaValue::F32(v),
            Value::Bool(v) => MetaValue::Bool(v),
            Value::String(s) => MetaValue::String(s.to_string_lossy()),
            Value::U64(v) => MetaValue::U64(v),
            Value::I64(v) => MetaValue::I64(v),
            Value::F64(v) => MetaValue::F64(v),
            Value::Array(a) => MetaValue::Array(a.to_meta()?),
        })
    }
}

pub(crate) fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// An array value viewed in place: element type, count and the encoded elements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Array<'a> {
    elem_type: ValueType,
    len: u64,
    raw: &'a [u8],
}

impl<'a> Array<'a> {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded elements (no type id, no count).
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterates the elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            elem_type: self.elem_type,
            remaining: self.len,
            cursor: Cursor::new(self.raw, 0),
        }
    }

    /// Iterates the elements of a STRING array (empty for other element types).
    pub fn strings(&self) -> impl Iterator<Item = GgufStr<'a>> + 'a {
        let is_string = self.elem_type == ValueType::String;
        self.iter().filter_map(move |v| match v {
            Value::String(s) if is_string => Some(s),
            _ => None,
        })
    }

    fn to_meta(self) -> Option<MetaArray> {
        let it = self.iter();
        Some(match self.elem_type {
            ValueType::U8 => {
                MetaArray::U8(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::I8 => {
                MetaArray::I8(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::U16 => {
                MetaArray::U16(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::I16 => {
                MetaArray::I16(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::U32 => {
                MetaArray::U32(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::I32 => {
                MetaArray::I32(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::U64 => {
                MetaArray::U64(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::I64 => {
                MetaArray::I64(it.filter_map(|v| v.as_integer()?.try_into().ok()).collect())
            }
            ValueType::F32 => MetaArray::F32(
                it.filter_map(|v| match v {
                    Value::F32(x) => Some(x),
                    _ => None,
                })
                .collect(),
            ),
            ValueType::F64 => MetaArray::F64(
                it.filter_map(|v| match v {
                    Value::F64(x) => Some(x),
                    _ => None,
                })
                .collect(),
            ),
            ValueType::Bool => MetaArray::Bool(
                it.filter_map(|v| match v {
                    Value::Bool(x) => Some(x),
                    _ => None,
                })
                .collect(),
            ),
            ValueType::String => {
                MetaArray::String(self.strings().map(|s| s.to_string_lossy()).collect())
            }
            ValueType::Array => return None,
        })
    }
}

/// Iterator over an [`Array`]'s elements.
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    elem_type: ValueType,
    remaining: u64,
    cursor: Cursor<'a>,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The bytes were validated by the reader; a failure here can only mean an Array built
        // from other bytes, and ends the iteration instead of panicking.
        let mut sink = Vec::new();
        let opts = ParseOptions {
            allow_nested: true,
            max_depth: u32::MAX,
            max_string_len: u64::MAX,
            max_array_len: u64::MAX,
        };
        parse_payload(&mut self.cursor, self.elem_type, "", 1, &opts, &mut sink).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (0, Some(n))
    }
}

/// A metadata value owned by the caller, for writing.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// UINT8
    U8(u8),
    /// INT8
    I8(i8),
    /// UINT16
    U16(u16),
    /// INT16
    I16(i16),
    /// UINT32
    U32(u32),
    /// INT32
    I32(i32),
    /// FLOAT32
    F32(f32),
    /// BOOL
    Bool(bool),
    /// STRING
    String(String),
    /// ARRAY (never nested)
    Array(MetaArray),
    /// UINT64
    U64(u64),
    /// INT64
    I64(i64),
    /// FLOAT64
    F64(f64),
}

/// An owned array of one element type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaArray {
    /// UINT8 elements
    U8(Vec<u8>),
    /// INT8 elements
    I8(Vec<i8>),
    /// UINT16 elements
    U16(Vec<u16>),
    /// INT16 elements
    I16(Vec<i16>),
    /// UINT32 elements
    U32(Vec<u32>),
    /// INT32 elements
    I32(Vec<i32>),
    /// FLOAT32 elements
    F32(Vec<f32>),
    /// BOOL elements
    Bool(Vec<bool>),
    /// STRING elements
    String(Vec<String>),
    /// UINT64 elements
    U64(Vec<u64>),
    /// INT64 elements
    I64(Vec<i64>),
    /// FLOAT64 elements
    F64(Vec<f64>),
}

macro_rules! encode_fixed {
    ($out:expr, $v:expr) => {{
        for x in $v {
            $out.extend_from_slice(&x.to_le_bytes());
        }
        ($v.len() as u64)
    }};
}

impl MetaArray {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            MetaArray::U8(_) => ValueType::U8,
            MetaArray::I8(_) => ValueType::I8,
            MetaArray::U16(_) => ValueType::U16,
            MetaArray::I16(_) => ValueType::I16,
            MetaArray::U32(_) => ValueType::U32,
            MetaArray::I32(_) => ValueType::I32,
            MetaArray::F32(_) => ValueType::F32,
            MetaArray::Bool(_) => ValueType::Bool,
            MetaArray::String(_) => ValueType::String,
            MetaArray::U64(_) => ValueType::U64,
            MetaArray::I64(_) => ValueType::I64,
            MetaArray::F64(_) => ValueType::F64,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.elem_type().id().to_le_bytes());
        let count_at = out.len();
        out.extend_from_slice(&0u64.to_le_bytes());
        let n = match self {
            MetaArray::U8(v) => encode_fixed!(out, v),
            MetaArray::I8(v) => encode_fixed!(out, v),
            MetaArray::U16(v) => encode_fixed!(out, v),
            MetaArray::I16(v) => encode_fixed!(out, v),
            MetaArray::U32(v) => encode_fixed!(out, v),
            MetaArray::I32(v) => encode_fixed!(out, v),
            MetaArray::F32(v) => encode_fixed!(out, v),
            MetaArray::U64(v) => encode_fixed!(out, v),
            MetaArray::I64(v) => encode_fixed!(out, v),
            MetaArray::F64(v) => encode_fixed!(out, v),
            MetaArray::Bool(v) => {
                out.extend(v.iter().map(|&b| u8::from(b)));
                v.len() as u64
            }
            MetaArray::String(v) => {
                for s in v {
                    encode_str(out, s.as_bytes());
                }
                v.len() as u64
            }
        };
        out[count_at..count_at + 8].copy_from_slice(&n.to_le_bytes());
    }
}

impl MetaValue {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// Appends the encoded value (without the leading type id) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::Bool(v) => out.push(u8::from(*v)),
            MetaValue::String(s) => encode_str(out, s.as_bytes()),
            MetaValue::Array(a) => a.encode_into(out),
            MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

macro_rules! from_scalar {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for MetaValue {
            fn from(x: $t) -> Self {
                MetaValue::$v(x)
            }
        }
        impl From<Vec<$t>> for MetaValue {
            fn from(x: Vec<$t>) -> Self {
                MetaValue::Array(MetaArray::$v(x))
            }
        }
    )*};
}
from_scalar!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, u64 => U64, i64 => I64, f64 => F64);

impl From<&str> for MetaValue {
    fn from(x: &str) -> Self {
        MetaValue::String(x.to_owned())
    }
}

impl From<Vec<&str>> for MetaValue {
    fn from(x: Vec<&str>) -> Self {
        MetaValue::Array(MetaArray::String(
            x.into_iter().map(str::to_owned).collect(),
        ))
    }
}

impl From<MetaArray> for MetaValue {
    fn from(x: MetaArray) -> Self {
        MetaValue::Array(x)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing primitives shared with the reader.

/// A bounds-checked little-endian cursor over a byte slice; `base` is the absolute file offset of
/// `buf[0]`, so errors report file offsets.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Self {
        Self { buf, pos: 0, base }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos.min(self.buf.len())) as u64
    }

    pub(crate) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Error> {
        let available = self.remaining();
        if n > available {
            return Err(Error::Truncated {
                offset: self.offset(),
                what,
                needed: n,
                available,
            });
        }
        // n <= remaining <= usize::MAX, so the cast and the slice are in range.
        let start = self.pos;
        let end = start + n as usize;
        self.pos = end;
        Ok(self.buf.get(start..end).unwrap_or_default())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 length (checked against `max_len` and the remaining bytes) + bytes.
    pub(crate) fn string(&mut self, what: &'static str, max_len: u64) -> Result<&'a [u8], Error> {
        let at = self.offset();
        let len = self.u64(what)?;
        if len > max_len {
            return Err(Error::LimitExceeded {
                what: "string length",
                offset: at,
                value: len,
                limit: max_len,
            });
        }
        self.take(len, what)
    }
}

pub(crate) struct ParseOptions {
    pub allow_nested: bool,
    pub max_depth: u32,
    pub max_string_len: u64,
    pub max_array_len: u64,
}

/// Offsets of string values that are not UTF-8 (reported as warnings by the reader).
pub(crate) type Utf8Sink = Vec<u64>;

/// Parses one value of type `ty`. `depth` is 1 for a top-level array's elements.
pub(crate) fn parse_payload<'a>(
    cur: &mut Cursor<'a>,
    ty: ValueType,
    key: &str,
    depth: u32,
    opts: &ParseOptions,
    bad_utf8: &mut Utf8Sink,
) -> Result<Value<'a>, Error> {
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.u8("u8 value")?),
        ValueType::I8 => Value::I8(cur.u8("i8 value")? as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array("u16 value")?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array("i16 value")?)),
        ValueType::U32 => Value::U32(cur.u32("u32 value")?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array("i32 value")?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array("f32 value")?)),
        ValueType::U64 => Value::U64(cur.u64("u64 value")?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array("i64 value")?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array("f64 value")?)),
        ValueType::Bool => {
            let at = cur.offset();
            match cur.u8("bool value")? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                byte => {
                    return Err(Error::InvalidBool {
                        offset: at,
                        key: key.to_owned(),
                        byte,
                    })
                }
            }
        }
        ValueType::String => {
            let at = cur.offset() + 8;
            let bytes = cur.string("string value", opts.max_string_len)?;
            if std::str::from_utf8(bytes).is_err() {
                bad_utf8.push(at);
            }
            Value::String(GgufStr(bytes))
        }
        ValueType::Array => Value::Array(parse_array(cur, key, depth, opts, bad_utf8)?),
    })
}

fn parse_array<'a>(
    cur: &mut Cursor<'a>,
    key: &str,
    depth: u32,
    opts: &ParseOptions,
    bad_utf8: &mut Utf8Sink,
) -> Result<Array<'a>, Error> {
    let type_at = cur.offset();
    let type_id = cur.u32("array element type")?;
    let elem_type = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
        offset: type_at,
        key: key.to_owned(),
        id: type_id,
    })?;
    if elem_type == ValueType::Array {
        if !opts.allow_nested {
            return Err(Error::NestedArray {
                offset: type_at,
                key: key.to_owned(),
            });
        }
        if depth >= opts.max_depth {
            return Err(Error::LimitExceeded {
                what: "array nesting depth",
                offset: type_at,
                value: u64::from(depth) + 1,
                limit: u64::from(opts.max_depth),
            });
        }
    }
    let count_at = cur.offset();
    let len = cur.u64("array length")?;
    if len > opts.max_array_len {
        return Err(Error::LimitExceeded {
            what: "array length",
            offset: count_at,
            value: len,
            limit: opts.max_array_len,
        });
    }
    // Lower bound on the encoded size: strings need 8 bytes each, nested arrays 12.
    let min_elem = elem_type.fixed_size().unwrap_or(match elem_type {
        ValueType::String => 8,
        _ => 12,
    });
    let min_bytes = len.saturating_mul(min_elem);
    if min_bytes > cur.remaining() {
        return Err(Error::LimitExceeded {
            what: "array length (bytes needed vs. bytes left)",
            offset: count_at,
            value: len,
            limit: cur.remaining() / min_elem,
        });
    }
    let start = cur.position();
    let start_offset = cur.offset();
    if let Some(size) = elem_type.fixed_size() {
        let raw = cur.take(len * size, "array elements")?;
        if elem_type == ValueType::Bool {
            if let Some(i) = raw.iter().position(|&b| b > 1) {
                return Err(Error::InvalidBool {
                    offset: start_offset + i as u64,
                    key: key.to_owned(),
                    byte: raw[i],
                });
            }
        }
        return Ok(Array {
            elem_type,
            len,
            raw,
        });
    }
    for _ in 0..len {
        parse_payload(cur, elem_type, key, depth + 1, opts, bad_utf8)?;
    }
    let end = cur.position();
    let raw = cur.buf.get(start..end).unwrap_or_default();
    Ok(Array {
        elem_type,
        len,
        raw,
    })
}
