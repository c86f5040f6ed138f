#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wowflow_data::npz::parse_npz(std::io::Cursor::new(data), "fuzz.npz");
});
