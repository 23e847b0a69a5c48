//! MessagePack as the host speaks it: requests are maps with string keys, and an
//! SQLite value is one of nil, bool, int, float, str, bin ([`Value`]).

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// Encodes `value` with struct fields as map keys (what every import expects).
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Route<'a> { method: &'a str, path: &'a str }
/// let bytes = pulp_pdk::msgpack::encode(&Route { method: "GET", path: "/" }).unwrap();
/// assert_eq!(bytes[0], 0x82); // a map of two
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::encode(std::any::type_name::<T>(), e))
}

/// Decodes `bytes` into `T`.
///
/// ```
/// let n: u32 = pulp_pdk::msgpack::decode(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 7]).unwrap(); // an int64
/// assert_eq!(n, 7);
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::decode(std::any::type_name::<T>(), e))
}

/// One SQLite value (a parameter or a column of a row).
///
/// ```
/// use pulp_pdk::sqlite::Value;
/// let params: Vec<Value> = vec!["milk".into(), 2i64.into(), None::<i64>.into()];
/// assert_eq!(params[2], Value::Nil);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// NULL.
    Nil,
    /// A boolean (stored as 0 or 1).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Str(String),
    /// A blob.
    Bin(Vec<u8>),
}

impl Value {
    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}

macro_rules! from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$v(x.into())
            }
        }
    )*};
}
from!(bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, String => Str, &str => Str, Vec<u8> => Bin);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Nil, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => s.serialize_i64(*n),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::Bin(b) => s.serialize_bytes(b),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nil, bool, int, float, str or bin")
            }
            fn visit_unit<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Nil)
            }
            fn visit_none<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Nil)
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Value, E> {
                Ok(Value::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Value, E> {
                i64::try_from(n)
                    .map(Value::Int)
                    .map_err(|_| E::custom(format!("{n} is over i64")))
            }
            fn visit_f64<E>(self, f: f64) -> std::result::Result<Value, E> {
                Ok(Value::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
                Ok(Value::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Value, E> {
                Ok(Value::Str(s))
            }
            fn visit_bytes<E>(self, b: &[u8]) -> std::result::Result<Value, E> {
                Ok(Value::Bin(b.to_vec()))
            }
            fn visit_byte_buf<E>(self, b: Vec<u8>) -> std::result::Result<Value, E> {
                Ok(Value::Bin(b))
            }
        }
        d.deserialize_any(V)
    }
}

/// The length of the msgpack value at the start of `bytes`, `None` when it is cut
/// short or malformed. Iterative, so no nesting depth can overflow the stack.
pub(crate) fn value_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    let mut pending: u64 = 1; // values still to skip
    while pending > 0 {
        pending -= 1;
        let b = *bytes.get(at)?;
        at += 1;
        let be = |at: usize, n: usize| -> Option<u64> {
            let s = bytes.get(at..at + n)?;
            Some(s.iter().fold(0u64, |acc, &x| acc << 8 | x as u64))
        };
        let (skip, items): (u64, u64) = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * (b & 0x0f) as u64),
            0x90..=0x9f => (0, (b & 0x0f) as u64),
            0xa0..=0xbf => ((b & 0x1f) as u64, 0),
            0xc4 | 0xd9 => (1 + be(at, 1)?, 0),
            0xc5 | 0xda => (2 + be(at, 2)?, 0),
            0xc6 | 0xdb => (4 + be(at, 4)?, 0),
            0xc7 => (2 + be(at, 1)?, 0),
            0xc8 => (3 + be(at, 2)?, 0),
            0xc9 => (5 + be(at, 4)?, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(at, 2)?),
            0xdd => (4, be(at, 4)?),
            0xde => (2, 2 * be(at, 2)?),
            0xdf => (4, 2 * be(at, 4)?),
            0xc1 => return None,
        };
        at = at.checked_add(usize::try_from(skip).ok()?)?;
        if at > bytes.len() {
            return None;
        }
        // Every item takes at least a byte: more than are left cannot be there.
        pending = pending.checked_add(items)?;
        if pending > (bytes.len() - at) as u64 {
            return None;
        }
    }
    Some(at)
}

/// The bytes of `value` when it is exactly one msgpack str, not checked for UTF-8
/// (no copy, no serde: the step path matches its keys and kind with this).
pub(crate) fn str_bytes(value: &[u8]) -> Option<&[u8]> {
    let be = |n: usize| -> Option<usize> {
        let s = value.get(1..1 + n)?;
        Some(s.iter().fold(0usize, |acc, &x| acc << 8 | x as usize))
    };
    let (head, len): (usize, usize) = match *value.first()? {
        b @ 0xa0..=0xbf => (1, (b & 0x1f) as usize),
        0xd9 => (2, be(1)?),
        0xda => (3, be(2)?),
        0xdb => (5, be(4)?),
        _ => return None,
    };
    let text = value.get(head..head.checked_add(len)?)?;
    (head + len == value.len()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_their_msgpack_types() {
        let vals = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Int(-5),
            Value::Int(1 << 40),
            Value::Float(1.5),
            Value::Str("héllo".into()),
            Value::Bin(b"hello".to_vec()), // valid UTF-8, still a blob
        ];
        let bytes = encode(&vals).unwrap();
        assert_eq!(decode::<Vec<Value>>(&bytes).unwrap(), vals);
        assert_eq!(value_len(&bytes), Some(bytes.len()));
    }

    #[test]
    fn value_len_refuses_cut_and_malformed_input_and_deep_nesting_is_fine() {
        let bytes = encode(&("a", vec![1u32, 2, 3], b"xyz".to_vec())).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(value_len(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(value_len(&[0xc1]), None);
        assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(str_bytes(&encode("kind").unwrap()), Some(&b"kind"[..]));
        let long = "x".repeat(300);
        assert_eq!(str_bytes(&encode(&long).unwrap()), Some(long.as_bytes()));
        assert_eq!(str_bytes(&[0xa2, b'a']), None); // cut
        assert_eq!(str_bytes(&[0xa1, b'a', 0]), None); // more than one value
        assert_eq!(str_bytes(&[0xc4, 0x01, b'a']), None); // bin, not str
        let mut deep = vec![0x91; 100_000];
        deep.push(0xc0);
        assert_eq!(value_len(&deep), Some(deep.len()));
    }
}
