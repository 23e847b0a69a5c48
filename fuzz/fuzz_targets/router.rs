//! The HTTP router: arbitrary route patterns and request paths (see
//! `ext_http::fuzz_router`, compiled only under `cfg(fuzzing)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ext_http::fuzz_router(data);
});
