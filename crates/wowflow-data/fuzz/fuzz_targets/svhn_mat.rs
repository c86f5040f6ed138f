#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wowflow_data::mat::parse_mat(data, "fuzz.mat");
    let _ = wowflow_data::svhn::parse_svhn_mat(data, "fuzz.mat");
});
