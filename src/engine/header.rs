//! A first pass over a GGUF's header, before candle's reader sees it: every count, length, tensor
//! shape and the alignment is checked against a limit and against the file's size, so a crafted
//! header cannot make the reader allocate gigabytes, overflow a size or divide by zero (candle's
//! reader divides by `general.alignment`). The pass reads and skips; it keeps nothing.
//!
//! A GGUF header is: magic, version, tensor count, metadata count, the metadata (key, type,
//! value), then the tensor infos (name, dimensions, type, offset); tensor data follows, aligned.

use super::error::{EngineError, Result};
use candle_core::quantized::GgmlDType;
use std::io::{Read, Seek, SeekFrom};

/// Most tensors a file may declare (a 405B llama has about 1,100).
pub const MAX_TENSORS: u64 = 65_536;
/// Most metadata entries (real files have a few dozen).
pub const MAX_METADATA: u64 = 65_536;
/// Longest string, in bytes (chat templates, the longest, are tens of KiB).
pub const MAX_STRING: u64 = 16 << 20;
/// Longest metadata key or tensor name, in bytes (the GGUF spec's limit for keys).
pub const MAX_NAME: u64 = 65_535;
/// Most elements in one array, and in all arrays together (vocabularies have up to ~260k tokens).
pub const MAX_ARRAY: u64 = 16 << 20;
/// Deepest nesting of arrays in arrays (llama.cpp writes none and reads none).
pub const MAX_NESTING: usize = 2;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u64 = 4;
/// Largest `general.alignment`, a power of two (llama.cpp writes 32).
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// The GGML type of a type code, as candle's reader maps them.
pub fn ggml_type(code: u32) -> Option<GgmlDType> {
    Some(match code {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// Bytes a tensor of `dims` takes as `dtype`, if its elements are whole blocks and the count fits.
pub fn tensor_bytes(dtype: GgmlDType, dims: &[u64]) -> Option<u64> {
    let elems = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d))?;
    let block = dtype.block_size() as u64;
    elems
        .is_multiple_of(block)
        .then(|| (elems / block).checked_mul(dtype.type_size() as u64))
        .flatten()
}

/// Check the header that starts at the reader's position; the position is restored after.
pub fn check<R: Read + Seek>(reader: &mut R, path: &str) -> Result<()> {
    let start = reader.stream_position().map_err(|e| io(path, e))?;
    let end = reader.seek(SeekFrom::End(0)).map_err(|e| io(path, e))?;
    reader
        .seek(SeekFrom::Start(start))
        .map_err(|e| io(path, e))?;
    let mut w = Walk {
        r: reader,
        left: end.saturating_sub(start),
        file: end.saturating_sub(start),
        path,
        v1: false,
        elements: 0,
    };
    let checked = w.header();
    reader
        .seek(SeekFrom::Start(start))
        .map_err(|e| io(path, e))?;
    checked
}

fn io(path: &str, source: std::io::Error) -> EngineError {
    EngineError::Io {
        path: path.to_string(),
        source,
    }
}

/// Value type codes of GGUF metadata.
const U8: u32 = 0;
const I8: u32 = 1;
const U16: u32 = 2;
const I16: u32 = 3;
const U32: u32 = 4;
const I32: u32 = 5;
const F32: u32 = 6;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;
const I64: u32 = 11;
const F64: u32 = 12;

/// Bytes of one value of a fixed-size type.
fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        U8 | I8 | BOOL => Some(1),
        U16 | I16 => Some(2),
        U32 | I32 | F32 => Some(4),
        U64 | I64 | F64 => Some(8),
        _ => None,
    }
}

struct Walk<'a, R> {
    r: &'a mut R,
    /// Bytes of the file after the reader's position.
    left: u64,
    file: u64,
    path: &'a str,
    /// Version 1 writes lengths and dimensions as u32, later versions as u64.
    v1: bool,
    /// Array elements seen so far, over all arrays.
    elements: u64,
}

impl<R: Read> Walk<'_, R> {
    fn corrupt(&self, detail: String) -> EngineError {
        EngineError::Corrupt {
            path: self.path.to_string(),
            detail,
        }
    }

    fn ends_early(&self, what: &str) -> EngineError {
        self.corrupt(format!(
            "the header ends inside {what} (the file has {} bytes)",
            self.file
        ))
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if self.left < N as u64 || self.r.read_exact(&mut b).is_err() {
            return Err(self.ends_early(what));
        }
        self.left -= N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(what)?))
    }

    /// A length or count: u32 in version 1, u64 after.
    fn length(&mut self, what: &str) -> Result<u64> {
        if self.v1 {
            Ok(self.u32(what)? as u64)
        } else {
            self.u64(what)
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        if n > self.left {
            return Err(self.ends_early(what));
        }
        let copied = std::io::copy(&mut self.r.by_ref().take(n), &mut std::io::sink())
            .map_err(|e| self.corrupt(format!("cannot read {what}: {e}")))?;
        if copied != n {
            return Err(self.ends_early(what));
        }
        self.left -= n;
        Ok(())
    }

    /// A string's length, checked against `max` and what is left of the file.
    fn string_len(&mut self, what: &str, max: u64) -> Result<u64> {
        let len = self.length(what)?;
        if len > max {
            return Err(self.corrupt(format!("{what} is {len} bytes long (at most {max})")));
        }
        if len > self.left {
            return Err(self.corrupt(format!(
                "{what} is {len} bytes long but only {} bytes of the file are left",
                self.left
            )));
        }
        Ok(len)
    }

    /// A key or a tensor's name.
    fn name(&mut self, what: &str) -> Result<String> {
        let len = self.string_len(what, MAX_NAME)?;
        let mut b = vec![0u8; len as usize];
        if self.r.read_exact(&mut b).is_err() {
            return Err(self.ends_early(what));
        }
        self.left -= len;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn header(&mut self) -> Result<()> {
        let magic = self
            .take::<4>("the magic bytes")
            .map_err(|_| not_gguf(self.path))?;
        if &magic != b"GGUF" && &magic != b"FUGG" {
            return Err(not_gguf(self.path));
        }
        let version = self.u32("the version")?;
        if !(1..=3).contains(&version) {
            return Err(self.corrupt(format!(
                "GGUF version {version} is not one this build reads (1 to 3)"
            )));
        }
        self.v1 = version == 1;
        let tensors = self.length("the tensor count")?;
        let entries = self.length("the metadata count")?;
        for (what, n, max) in [
            ("tensor count", tensors, MAX_TENSORS),
            ("metadata count", entries, MAX_METADATA),
        ] {
            if n > max {
                return Err(self.corrupt(format!("{what} = {n} is out of range (0 to {max})")));
            }
        }
        for i in 0..entries {
            let key = self.name(&format!("the key of metadata entry {i}"))?;
            let ty = self.u32(&format!("the type of {key}"))?;
            let value = self.value(ty, &key, 0)?;
            if key == "general.alignment" {
                self.check_alignment(ty, value)?;
            }
        }
        for i in 0..tensors {
            self.tensor_info(i)?;
        }
        Ok(())
    }

    /// Skip one value of type `ty`; returns it when it is an integer (for the alignment).
    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Option<i128>> {
        if let Some(n) = fixed_size(ty) {
            let mut b = [0u8; 8];
            if n > self.left || self.r.read_exact(&mut b[..n as usize]).is_err() {
                return Err(self.ends_early(key));
            }
            self.left -= n;
            return Ok(integer(ty, b));
        }
        match ty {
            STRING => {
                let len = self.string_len(key, MAX_STRING)?;
                self.skip(len, key)?;
                Ok(None)
            }
            ARRAY => {
                if depth >= MAX_NESTING {
                    return Err(
                        self.corrupt(format!("{key} nests arrays more than {MAX_NESTING} deep"))
                    );
                }
                let ty = self.u32(key)?;
                let len = self.length(key)?;
                self.elements = self.elements.saturating_add(len);
                if len > MAX_ARRAY || self.elements > MAX_ARRAY {
                    return Err(self.corrupt(format!(
                        "{key} has {len} elements (at most {MAX_ARRAY} in all arrays together)"
                    )));
                }
                // Every element takes at least its size (a length prefix for strings and arrays).
                let least = fixed_size(ty).unwrap_or(if self.v1 { 4 } else { 8 });
                if len.saturating_mul(least) > self.left {
                    return Err(self.corrupt(format!(
                        "{key} has {len} elements but only {} bytes of the file are left",
                        self.left
                    )));
                }
                match fixed_size(ty) {
                    Some(n) => self.skip(len * n, key)?,
                    None => {
                        for _ in 0..len {
                            self.value(ty, key, depth + 1)?;
                        }
                    }
                }
                Ok(None)
            }
            _ => Err(self.corrupt(format!("{key} has the unknown value type {ty}"))),
        }
    }

    /// The alignment must be a power of two (candle's reader divides by it) of a type candle reads
    /// (it silently takes 32 for a 64-bit one, which would misplace every tensor).
    fn check_alignment(&self, ty: u32, value: Option<i128>) -> Result<()> {
        let limit = format!("a power of two from 1 to {MAX_ALIGNMENT}");
        let small = matches!(ty, U8 | I8 | U16 | I16 | U32 | I32);
        match value.filter(|_| small) {
            Some(a) if a > 0 && a <= MAX_ALIGNMENT as i128 && (a as u64).is_power_of_two() => {
                Ok(())
            }
            Some(a) => {
                Err(self.corrupt(format!("general.alignment = {a} is out of range ({limit})")))
            }
            None => Err(self.corrupt(format!(
                "general.alignment is not a 32-bit integer ({limit})"
            ))),
        }
    }

    fn tensor_info(&mut self, i: u64) -> Result<()> {
        let name = self.name(&format!("the name of tensor {i}"))?;
        let what = format!("tensor {name}");
        let n_dims = self.u32(&what)? as u64;
        if n_dims > MAX_DIMS {
            return Err(self.corrupt(format!(
                "{what} has {n_dims} dimensions (at most {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.length(&what)?);
        }
        let code = self.u32(&what)?;
        let Some(dtype) = ggml_type(code) else {
            return Err(self.corrupt(format!("{what} has the unknown type {code}")));
        };
        self.u64(&what)?; // offset: checked against the file once the data's start is known
        if dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(self.corrupt(format!(
                "{what} of shape {dims:?} has more values than a 64-bit count holds"
            )));
        }
        match tensor_bytes(dtype, &dims) {
            Some(bytes) if bytes <= self.file => Ok(()),
            Some(bytes) => Err(self.corrupt(format!(
                "{what} of shape {dims:?} needs {bytes} bytes but the file has {}",
                self.file
            ))),
            None => Err(self.corrupt(format!(
                "{what} of shape {dims:?} is not a whole number of {dtype:?} blocks of {} values",
                dtype.block_size()
            ))),
        }
    }
}

/// The integer in the first bytes of `b`, read as type `ty`; `None` for floats and booleans.
fn integer(ty: u32, b: [u8; 8]) -> Option<i128> {
    let [b0, b1, b2, b3, ..] = b;
    Some(match ty {
        U8 => b0 as i128,
        I8 => b0 as i8 as i128,
        U16 => u16::from_le_bytes([b0, b1]) as i128,
        I16 => i16::from_le_bytes([b0, b1]) as i128,
        U32 => u32::from_le_bytes([b0, b1, b2, b3]) as i128,
        I32 => i32::from_le_bytes([b0, b1, b2, b3]) as i128,
        U64 => u64::from_le_bytes(b) as i128,
        I64 => i64::from_le_bytes(b) as i128,
        _ => return None,
    })
}

fn not_gguf(path: &str) -> EngineError {
    EngineError::NotGguf {
        path: path.to_string(),
        detail: "it does not start with the GGUF magic bytes".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A version-3 header with `tensors` declared (none written) and these metadata entries:
    /// key, type code, the value's bytes.
    fn header(tensors: u64, entries: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend((entries.len() as u64).to_le_bytes());
        for (key, ty, value) in entries {
            b.extend((key.len() as u64).to_le_bytes());
            b.extend(key.as_bytes());
            b.extend(ty.to_le_bytes());
            b.extend(value);
        }
        b
    }

    fn err(bytes: Vec<u8>) -> String {
        let mut r = Cursor::new(bytes);
        let e = check(&mut r, "h.gguf").unwrap_err().to_string();
        assert_eq!(r.position(), 0, "the position is restored");
        e
    }

    /// An array's bytes: element type, length, then `rest`.
    fn array(ty: u32, len: u64, rest: &[u8]) -> Vec<u8> {
        let mut b = ty.to_le_bytes().to_vec();
        b.extend(len.to_le_bytes());
        b.extend(rest);
        b
    }

    #[test]
    fn the_synthetic_model_passes() {
        let bytes = crate::engine::synthetic::gguf_bytes(&Default::default()).unwrap();
        check(&mut Cursor::new(bytes), "synthetic").unwrap();
    }

    #[test]
    fn counts_and_lengths_past_their_limits_are_named() {
        let cases = [
            (
                header(1 << 20, &[]),
                "tensor count = 1048576 is out of range (0 to 65536)",
            ),
            (
                header(0, &[("k", STRING, (1u64 << 40).to_le_bytes().to_vec())]),
                "k is 1099511627776 bytes long (at most 16777216)",
            ),
            (
                header(0, &[("k", STRING, 1000u64.to_le_bytes().to_vec())]),
                "k is 1000 bytes long but only 0 bytes of the file are left",
            ),
            (
                header(0, &[("k", ARRAY, array(U8, 1 << 25, &[]))]),
                "k has 33554432 elements (at most 16777216 in all arrays together)",
            ),
            (
                header(0, &[("k", ARRAY, array(U32, 1000, &[0; 8]))]),
                "k has 1000 elements but only 8 bytes of the file are left",
            ),
            (
                header(
                    0,
                    &[(
                        "k",
                        ARRAY,
                        array(ARRAY, 1, &array(ARRAY, 1, &array(U8, 0, &[]))),
                    )],
                ),
                "k nests arrays more than 2 deep",
            ),
            (
                header(0, &[("k", 13, vec![])]),
                "k has the unknown value type 13",
            ),
            (
                header(2, &[]),
                "the header ends inside the name of tensor 0",
            ),
        ];
        for (bytes, needle) in cases {
            let e = err(bytes);
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn the_alignment_is_a_power_of_two_of_32_bits() {
        let key = "general.alignment";
        for (ty, value, ok) in [
            (U32, 32u32.to_le_bytes().to_vec(), true),
            (U8, vec![64], true),
            (U32, 0u32.to_le_bytes().to_vec(), false),
            (U32, 48u32.to_le_bytes().to_vec(), false),
            (I32, (-32i32).to_le_bytes().to_vec(), false),
            (U32, (1u32 << 21).to_le_bytes().to_vec(), false),
            (U64, 32u64.to_le_bytes().to_vec(), false),
            (
                STRING,
                [1u64.to_le_bytes().as_slice(), b"x"].concat(),
                false,
            ),
        ] {
            let r = check(
                &mut Cursor::new(header(0, &[(key, ty, value.clone())])),
                "a",
            );
            assert_eq!(r.is_ok(), ok, "type {ty}, {value:?}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains("general.alignment"), "{e}");
            }
        }
    }

    #[test]
    fn other_files_are_not_gguf_or_not_this_version() {
        assert!(err(b"just text".to_vec()).contains("is not a GGUF file"));
        assert!(err(b"GG".to_vec()).contains("is not a GGUF file"));
        let mut v4 = header(0, &[]);
        v4[4] = 4;
        assert!(err(v4).contains("GGUF version 4 is not one this build reads (1 to 3)"));
    }

    #[test]
    fn a_tensor_must_be_whole_blocks_within_the_file() {
        let tensor = |dims: &[u64], code: u32| {
            let mut b = header(1, &[]);
            b.extend(1u64.to_le_bytes());
            b.push(b't');
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(code.to_le_bytes());
            b.extend(0u64.to_le_bytes());
            b
        };
        assert!(err(tensor(&[u64::MAX, 4], 0)).contains("more values than a 64-bit count holds"));
        assert!(err(tensor(&[33], 8)).contains("is not a whole number of Q8_0 blocks of 32 values"));
        assert!(err(tensor(&[1 << 20], 0)).contains("needs 4194304 bytes but the file has"));
        assert!(err(tensor(&[1, 1, 1, 1, 1], 0)).contains("has 5 dimensions (at most 4)"));
        assert!(err(tensor(&[4], 99)).contains("has the unknown type 99"));
        check(&mut Cursor::new(tensor(&[2], 0)), "t").unwrap();
    }
}
