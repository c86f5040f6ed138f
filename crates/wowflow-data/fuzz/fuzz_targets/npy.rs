#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = wowflow_data::npy::parse_npy(data, "fuzz.npy") {
        // Whatever parses must be internally consistent.
        assert_eq!(a.shape.iter().product::<usize>(), a.len());
        let _ = a.to_i64();
        let _ = a.to_f32();
    }
});
