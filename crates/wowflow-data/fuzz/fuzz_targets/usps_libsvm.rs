#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = wowflow_data::compress::decompress(data.to_vec(), "fuzz.bz2") {
        if let Ok(set) = wowflow_data::usps::parse_usps_libsvm(&bytes, "fuzz.bz2") {
            assert!(set.labels.iter().all(|&l| l < 10));
        }
    }
});
