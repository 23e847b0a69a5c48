//! `entropy` (always bound; a manifest may also declare its alias `entropy.read`):
//!
//! - `entropy_fill(buf_ptr, buf_len) -> status` fills the buffer from the OS CSPRNG; 2 outside
//!   memory, then 11 over 64 KiB.
//! - `entropy_read(req_ptr, req_len, resp_ptr_out, resp_len_out) -> status`: `{n: u32}` →
//!   `{bytes: bin}`; 4 when `n` is 0, 11 over 65 536 (the Go `entropy.read` shape).

#![warn(missing_docs)]

use pulp_ext::wasmtime::Caller;
use pulp_ext::{Binding, BytesMut, Capability, Import, Msgpack, Out, State, Status};
use serde::{Deserialize, Serialize};

/// The `entropy` capability, for a registry built by hand.
pub struct Entropy;

pulp_ext::register!(Entropy);

/// The most bytes one call hands out.
const MAX: usize = 64 * 1024;

#[derive(Deserialize)]
struct ReadRequest {
    n: u32,
}

#[derive(Serialize)]
struct ReadResponse {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

fn fill(buf: &mut [u8]) -> Result<(), pulp_ext::Error> {
    getrandom::fill(buf)
        .map_err(|e| Status::Failed.err(format!("the OS random source failed: {e}")))
}

fn too_large(n: usize) -> pulp_ext::Error {
    Status::TooLarge.err(format!(
        "{n} random bytes asked for; at most {MAX} per call"
    ))
}

impl Capability for Entropy {
    type Settings = ();

    fn name(&self) -> &'static str {
        "entropy"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["entropy.read"]
    }

    fn binding(&self) -> Binding {
        Binding::Always
    }

    fn imports(&self) -> Vec<Import> {
        vec![
            Import::new("entropy_fill", entropy_fill),
            Import::new("entropy_read", entropy_read),
        ]
    }
}

fn entropy_fill(c: &mut Caller<'_, State>, buf: BytesMut) -> Result<(), pulp_ext::Error> {
    // Outside memory is 2 before the size is looked at (ABI §4's order).
    let buf = buf.get(c)?;
    if buf.len() > MAX {
        return Err(too_large(buf.len()));
    }
    fill(buf)
}

fn entropy_read(
    c: &mut Caller<'_, State>,
    req: Msgpack<ReadRequest>,
    out: Out<ReadResponse>,
) -> Result<(), pulp_ext::Error> {
    let ReadRequest { n } = req.read(c)?;
    let n = n as usize;
    if n == 0 {
        return Err(Status::Invalid.err("entropy_read asked for 0 bytes"));
    }
    if n > MAX {
        return Err(too_large(n));
    }
    let mut bytes = vec![0u8; n];
    fill(&mut bytes)?;
    out.write(c, &ReadResponse { bytes })
}
