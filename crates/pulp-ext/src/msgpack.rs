//! The msgpack helpers every capability uses: decode a request, encode a result.
//!
//! Structs are encoded as maps with their field names (ABI §4), and a decode
//! failure is [`Status::BadEncoding`] with serde's message, so capabilities never
//! map msgpack errors themselves.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Status};

/// Decodes a msgpack request. `what` names it in the error (`"http_fetch request"`).
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Req { n: u32 }
/// let req: Req = pulp_ext::msgpack::decode(&[0x81, 0xa1, b'n', 0x05], "entropy_read request").unwrap();
/// assert_eq!(req.n, 5);
/// assert!(pulp_ext::msgpack::decode::<Req>(&[0xc1], "entropy_read request").is_err());
/// ```
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        Status::BadEncoding.err(format!(
            "{what} is not valid msgpack of the expected shape: {e}"
        ))
    })
}

/// Decodes a msgpack map into `T`. serde would also accept a struct as an array
/// of its fields; requests of ABI §4 are maps, so anything else is refused.
pub fn decode_map<T: DeserializeOwned>(
    bytes: &[u8],
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<T, Error> {
    match bytes.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => decode(bytes, what),
        _ => Err(Status::BadEncoding.err(format!("{what} must be a msgpack map"))),
    }
}

/// Encodes a result as msgpack, structs as maps keyed by field name.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec_named(value)
        .map_err(|e| Status::Failed.err(format!("could not encode the result as msgpack: {e}")))
}
