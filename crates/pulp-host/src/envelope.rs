//! The step envelope of ABI §3: a 20-byte header (call number, wall time, payload
//! length) and the payload.

use std::time::{SystemTime, UNIX_EPOCH};

/// A step's input (ABI §3): the 20-byte header and the payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Counts every step, idle or not, from 0.
    pub call_number: u64,
    /// Unix nanoseconds when the host made the call.
    pub wall_time: u64,
    /// Empty for an idle tick, else a msgpack `StepEvent`.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// The envelope's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(self.call_number, self.wall_time, self.payload.len()).to_vec();
        out.extend_from_slice(&self.payload);
        out
    }

    /// The envelope in `bytes` (header and payload); `None` when the header's
    /// payload length is not what follows it.
    pub fn parse(bytes: &[u8]) -> Option<Envelope> {
        let word = |r: std::ops::Range<usize>| bytes.get(r);
        let call_number = u64::from_le_bytes(word(0..8)?.try_into().ok()?);
        let wall_time = u64::from_le_bytes(word(8..16)?.try_into().ok()?);
        let len = u32::from_le_bytes(word(16..20)?.try_into().ok()?) as usize;
        let payload = bytes.get(20..)?;
        (payload.len() == len).then(|| Envelope {
            call_number,
            wall_time,
            payload: payload.to_vec(),
        })
    }
}

pub(crate) fn header(call_number: u64, wall_time: u64, payload_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&call_number.to_le_bytes());
    h[8..16].copy_from_slice(&wall_time.to_le_bytes());
    h[16..].copy_from_slice(&(payload_len as u32).to_le_bytes());
    h
}

pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
