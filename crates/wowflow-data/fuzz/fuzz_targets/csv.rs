#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = wowflow_data::csv::parse_labeled_csv(data, "fuzz.csv") {
        assert_eq!(rows.features.len(), rows.labels.len() * rows.dim);
        assert!(rows.features.iter().all(|v| v.is_finite()));
    }
});
