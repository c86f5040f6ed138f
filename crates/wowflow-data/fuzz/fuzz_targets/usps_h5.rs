#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

// read_usps_h5 promises an error, never a panic, even though the HDF5 crate it wraps may
// panic on malformed files (it is guarded by catch_unwind). libfuzzer-sys installs a panic
// hook that aborts on *any* panic, caught or not, so replace it with a silent one: a panic
// that escapes read_usps_h5 still aborts, because it unwinds out of the fuzz entry point.
fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write");
    f.flush().expect("flush");
    for split in ["train", "test"] {
        let _ = wowflow_data::usps::read_usps_h5(f.path(), split);
    }
});
