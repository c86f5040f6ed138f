#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut p, mut l) = (Vec::new(), Vec::new());
    let _ = wowflow_data::cifar::parse_cifar10_batch(data, "fuzz.bin", &mut p, &mut l);
    let _ = wowflow_data::cifar::parse_cifar10_tar(data, "test", "fuzz.tar");
});
