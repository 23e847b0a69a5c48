//! The envelope and event encoders: whatever payload map and kind, the StepEvent
//! bytes are one msgpack value `{kind, payload}` with the payload's bytes inline and
//! unchanged, and the envelope
//! header carries the call number, wall time and length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (head, rest) = data.split_at(16);
    let call = u64::from_le_bytes(head[..8].try_into().unwrap());
    let wall = u64::from_le_bytes(head[8..].try_into().unwrap());
    let kind_len = (rest[0] as usize).min(rest.len() - 1);
    let kind = String::from_utf8_lossy(&rest[1..1 + kind_len]).into_owned();
    let Ok(value) = rmpv::decode::read_value(&mut &rest[1 + kind_len..]) else { return };
    let payload = match value {
        rmpv::Value::Map(_) => value,
        other => rmpv::Value::Map(vec![(rmpv::Value::from("v"), other)]),
    };
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &payload).unwrap();
    let event = pulp_ext::Event::from_raw(kind.clone(), bytes.clone());
    let mut out = Vec::new();
    event.encode_into(&mut out);
    // One whole value: {kind, payload} with the payload's bytes inline, unchanged.
    let mut rest = &out[..];
    let back = rmpv::decode::read_value(&mut rest).expect("StepEvent bytes decode");
    assert!(rest.is_empty());
    assert_eq!(back["kind"].as_str(), Some(kind.as_str()));
    assert!(out.ends_with(&bytes));
    let mut again = Vec::new();
    rmpv::encode::write_value(&mut again, &back["payload"]).unwrap();
    assert_eq!(again.len(), bytes.len());

    let env = pulp_host::Envelope { call_number: call, wall_time: wall, payload: out.clone() };
    let e = env.encode();
    assert_eq!(u64::from_le_bytes(e[..8].try_into().unwrap()), call);
    assert_eq!(u64::from_le_bytes(e[8..16].try_into().unwrap()), wall);
    assert_eq!(u32::from_le_bytes(e[16..20].try_into().unwrap()) as usize, out.len());
    assert_eq!(&e[20..], &out[..]);
});
