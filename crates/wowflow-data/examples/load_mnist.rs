//! Benchmark: load and decode MNIST train (60 000 images + labels) from the idx.gz files.
//!
//! `cargo run --release -p wowflow-data --example load_mnist [DATA_DIR]`
//! (DATA_DIR defaults to `$WOWFLOW_DATA`, then `<repo>/../shared/data`). Target: ≤ 0.5 s.

use std::path::PathBuf;
use std::time::Instant;
use wowflow_data::{load_split, DataDirs, Origin, Root, Split};

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("WOWFLOW_DATA"))
        .map(PathBuf::from)
        .unwrap_or_else(|| wowflow_testkit::repo_root().join("../shared/data"));
    let dirs = DataDirs::only(vec![Root {
        path: dir,
        origin: Origin::Explicit,
    }]);
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        match load_split(&dirs, "mnist", Split::Train) {
            Ok(set) => {
                let dt = t.elapsed().as_secs_f64();
                times.push(dt);
                println!(
                    "loaded {} images of {}x{} in {:.3} s",
                    set.len(),
                    set.height,
                    set.width,
                    dt
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "MNIST train load+decode: median {:.3} s, best {:.3} s (target <= 0.5 s)",
        times[2], times[0]
    );
}
