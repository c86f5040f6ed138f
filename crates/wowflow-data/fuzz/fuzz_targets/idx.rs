#![no_main]
use libfuzzer_sys::fuzz_target;

// Decompression (gzip/bzip2/raw, detected from the bytes) followed by both idx layouts.
fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = wowflow_data::compress::decompress(data.to_vec(), "fuzz.gz") {
        let images = wowflow_data::idx::parse_idx(bytes.clone(), 3, "fuzz-images");
        let labels = wowflow_data::idx::parse_idx(bytes, 1, "fuzz-labels");
        if let (Ok(i), Ok(l)) = (images, labels) {
            let _ = wowflow_data::idx::idx_image_set(i, l, 10, "i", "l");
        }
    }
});
