//! The manifest parser and the config encoder: any text either parses or is refused
//! with problems; a parsed manifest's `[config]` encodes to one whole msgpack value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("/fuzz/pulp.plugin.toml");
    match pulp_host::Manifest::parse(text, path) {
        Ok(m) => {
            // `[secrets]` may name variables and files that are not there: an error
            // naming the secret, never a panic.
            let bytes = match m.encoded_config() {
                Ok(b) => b,
                Err(e) => return assert!(e.starts_with("secret ")),
            };
            if !bytes.is_empty() {
                let mut rest = &bytes[..];
                let v = rmpv::decode::read_value(&mut rest).expect("the config encodes to msgpack");
                assert!(rest.is_empty(), "one value, nothing after it");
                assert!(v.is_map(), "the config is a map");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
