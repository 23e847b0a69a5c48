//! The step envelope (ABI.md §3) and the events it carries, typed.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::msgpack::{decode, str_bytes, value_len};
use crate::{http, Error, Result, Status};

/// What every step carries besides its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// 0, 1, 2, ...: counts every step, idle or not.
    pub call_number: u64,
    /// Unix nanoseconds when the host made the call.
    pub wall_time: u64,
}

/// One step's event. Unknown kinds borrow the step's input (no copy); copy what
/// must outlive the step.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    /// An idle tick: no event.
    Tick,
    /// An HTTP request on a route this plugin registered; answer it with
    /// [`http::Request::reply`], in this step or a later one.
    Http(http::Request),
    /// A WebSocket client connected.
    WsOpen(WsOpen),
    /// A WebSocket message.
    WsFrame(WsFrame),
    /// A WebSocket connection closed.
    WsClose(WsClose),
    /// A kind this SDK does not know, with its payload as msgpack.
    Other {
        /// The event's kind.
        kind: &'a str,
        /// Its payload map, msgpack.
        payload: &'a [u8],
    },
}

/// `ws.open`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WsOpen {
    /// The connection, for [`crate::ws::send_text`] and friends.
    pub conn_id: u64,
    /// The request path.
    pub path: String,
    /// Query parameters (first value of each).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Request headers (canonical names, first value of each).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `ws.frame`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WsFrame {
    /// The connection.
    pub conn_id: u64,
    /// 1 text, 2 binary.
    pub opcode: u8,
    /// The message.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl WsFrame {
    /// The message as text, if it is a text frame.
    pub fn text(&self) -> Option<&str> {
        (self.opcode == 1)
            .then(|| std::str::from_utf8(&self.payload).ok())
            .flatten()
    }
}

/// `ws.close`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WsClose {
    /// The connection.
    pub conn_id: u64,
    /// The close code (65535 when no close frame came).
    pub code: u16,
    /// The reason.
    #[serde(default)]
    pub reason: String,
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(Status::BadEncoding, what)
}

impl Envelope {
    /// Reads a step's input: the 20-byte header, then the event (none: a tick).
    ///
    /// ```
    /// let mut input = vec![7, 0, 0, 0, 0, 0, 0, 0]; // call number 7
    /// input.extend(1_764_028_800_000_000_000u64.to_le_bytes()); // wall time
    /// input.extend(0u32.to_le_bytes()); // no payload
    /// let (env, event) = pulp_pdk::Envelope::parse(&input).unwrap();
    /// assert_eq!(env.call_number, 7);
    /// assert_eq!(event, pulp_pdk::Event::Tick);
    /// ```
    pub fn parse(input: &[u8]) -> Result<(Envelope, Event<'_>)> {
        let header = input
            .get(..20)
            .ok_or_else(|| bad(format!("a step input of {} bytes, under 20", input.len())))?;
        let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let envelope = Envelope {
            call_number: u64_at(0),
            wall_time: u64_at(8),
        };
        let len = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes")) as usize;
        let payload = input
            .get(20..20 + len)
            .ok_or_else(|| bad(format!("payload_len {len} is past the input's end")))?;
        if payload.is_empty() {
            return Ok((envelope, Event::Tick));
        }
        Ok((envelope, Event::parse(payload)?))
    }
}

impl<'a> Event<'a> {
    /// Reads a `StepEvent` map `{kind, payload}` (the payload map inline).
    pub fn parse(bytes: &'a [u8]) -> Result<Event<'a>> {
        let (n, mut at) = match *bytes.first().ok_or_else(|| bad("an empty event"))? {
            b @ 0x80..=0x8f => ((b & 0x0f) as usize, 1),
            0xde if bytes.len() >= 3 => (u16::from_be_bytes([bytes[1], bytes[2]]) as usize, 3),
            _ => return Err(bad("an event that is not a msgpack map")),
        };
        let (mut kind, mut payload) = (None, None);
        for _ in 0..n {
            let klen = value_len(&bytes[at..]).ok_or_else(|| bad("a cut event"))?;
            let key = &bytes[at..at + klen];
            at += klen;
            let vlen = value_len(&bytes[at..]).ok_or_else(|| bad("a cut event"))?;
            let value = &bytes[at..at + vlen];
            at += vlen;
            // Keys and kinds are compared as msgpack strs' bytes: no serde, and
            // UTF-8 is checked only for a kind this SDK does not know.
            match str_bytes(key) {
                Some(b"kind") => {
                    kind = Some(
                        str_bytes(value).ok_or_else(|| bad("an event kind that is not text"))?,
                    )
                }
                Some(b"payload") => payload = Some(value),
                _ => {}
            }
        }
        let kind = kind.ok_or_else(|| bad("an event without a kind"))?;
        let payload = payload.unwrap_or(&[0x80]);
        Ok(match kind {
            b"http.request" => Event::Http(decode(payload)?),
            b"ws.open" => Event::WsOpen(decode(payload)?),
            b"ws.frame" => Event::WsFrame(decode(payload)?),
            b"ws.close" => Event::WsClose(decode(payload)?),
            _ => Event::Other {
                kind: std::str::from_utf8(kind)
                    .map_err(|_| bad("an event kind that is not UTF-8"))?,
                payload,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI.md §5's `http.request` vector.
    const HTTP: &str =
        "82 a4 6b 69 6e 64 ac 68 74 74 70 2e 72 65 71 75 65 73 74 a7 70 61 79 6c 6f 61 64
87 a2 69 64 01 a6 6d 65 74 68 6f 64 a3 47 45 54 a4 70 61 74 68 a8 2f 65 63 68 6f
2f 68 69 a6 70 61 72 61 6d 73 81 a3 6d 73 67 a2 68 69 a5 71 75 65 72 79 80 a7 68
65 61 64 65 72 73 80 a4 62 6f 64 79 c4 00";

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn envelope(payload: &[u8]) -> Vec<u8> {
        let mut v = 3u64.to_le_bytes().to_vec();
        v.extend(9u64.to_le_bytes());
        v.extend((payload.len() as u32).to_le_bytes());
        v.extend(payload);
        v
    }

    #[test]
    fn the_abi_http_vector_is_a_typed_request() {
        let input = envelope(&hex(HTTP));
        let (env, ev) = Envelope::parse(&input).unwrap();
        assert_eq!((env.call_number, env.wall_time), (3, 9));
        let Event::Http(r) = ev else { panic!("{ev:?}") };
        assert_eq!(
            (r.id, r.method.as_str(), r.path.as_str()),
            (1, "GET", "/echo/hi")
        );
        assert_eq!(r.params["msg"], "hi");
        assert!(r.body.is_empty() && r.query.is_empty());
        assert_eq!(r.reply().id(), 1);
    }

    #[test]
    fn websocket_events_and_unknown_kinds() {
        #[derive(serde::Serialize)]
        struct E<P> {
            kind: &'static str,
            payload: P,
        }
        #[derive(serde::Serialize)]
        struct Frame {
            conn_id: u64,
            opcode: u8,
            #[serde(with = "serde_bytes")]
            payload: Vec<u8>,
        }
        let f = crate::msgpack::encode(&E {
            kind: "ws.frame",
            payload: Frame {
                conn_id: 4,
                opcode: 1,
                payload: b"hi".to_vec(),
            },
        })
        .unwrap();
        let Event::WsFrame(fr) = Event::parse(&f).unwrap() else {
            panic!()
        };
        assert_eq!((fr.conn_id, fr.text()), (4, Some("hi")));
        let o = crate::msgpack::encode(&E {
            kind: "timer.fired",
            payload: [("n", 1)].into_iter().collect::<BTreeMap<_, _>>(),
        })
        .unwrap();
        let Event::Other { kind, payload } = Event::parse(&o).unwrap() else {
            panic!()
        };
        assert_eq!(kind, "timer.fired");
        assert_eq!(payload, [0x81, 0xa1, b'n', 0x01]);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = hex(HTTP);
        for cut in 0..good.len() {
            assert!(Event::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Envelope::parse(&[0; 19]).is_err());
        let mut past = envelope(b"\x80");
        past[16] = 200; // payload_len past the end
        assert!(Envelope::parse(&past).is_err());
        assert!(Event::parse(&[0x92, 0x01, 0x02]).is_err());
    }
}
