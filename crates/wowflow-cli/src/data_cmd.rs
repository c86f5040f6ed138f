//! `wowflow data list|verify|fetch|show`: the dataset registry from the command line.
//! All the work is in `wowflow-data`; this module parses arguments and prints reports.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use wowflow_data::{
    cache_dir, dataset, draw_disjoint, fetch_with_progress, list, load_split, verify, Check,
    DataDirs, DatasetStatus, FetchOutcome, Split,
};

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// List the known datasets and where their files were found (sizes checked).
    ///
    /// Search order: --data-dir, $WOWFLOW_DATA, the user cache directory (where `data fetch`
    /// writes), then system copies (/usr/share/datasets/fashion-mnist from Debian's
    /// dataset-fashion-mnist).
    List {
        /// A directory holding datasets (DIR/mnist/...) or one dataset's files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check md5 and sha256 of every file found, for one dataset or all.
    Verify {
        /// Dataset name (mnist, fashion-mnist, kmnist, usps, cifar10, svhn); all if omitted.
        name: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Download a dataset, resuming partial files and verifying checksums.
    Fetch {
        /// Dataset name.
        name: String,
        /// Destination root (files go to TO/<dataset>/); default: the user cache directory.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Download from BASE_URL/<file name> instead of the registry's public addresses.
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Write a PNG grid of seeded sample images, one row per class.
    Show {
        /// Dataset name.
        name: String,
        /// Which split to show (train or test).
        #[arg(long, default_value = "test")]
        split: String,
        /// Images per class (columns).
        #[arg(long, default_value_t = 10)]
        per_class: usize,
        /// Seed of the draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG (default: <name>-<split>.png).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Pixel magnification.
        #[arg(long, default_value_t = 3)]
        scale: u32,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::List { data_dir } => {
            let dirs = DataDirs::new(data_dir.as_deref());
            print_roots(&dirs);
            for ds in list(&dirs) {
                print_status(&ds);
            }
            Ok(())
        }
        DataCommand::Verify { name, data_dir } => {
            let dirs = DataDirs::new(data_dir.as_deref());
            let report = verify(&dirs, name.as_deref())?;
            let mut bad = 0;
            for ds in &report {
                print_status(ds);
                bad += ds
                    .files
                    .iter()
                    .filter(|f| matches!(f.check, Some(Check::Mismatch(_))))
                    .count();
            }
            if bad > 0 {
                bail!("{bad} file(s) do not match the registry's checksums");
            }
            if let Some(n) = name {
                if !report[0].complete() {
                    bail!("{n} is incomplete: required files are missing (see above; `wowflow data fetch {n}`)");
                }
            }
            Ok(())
        }
        DataCommand::Fetch { name, to, base_url } => {
            let to = match to {
                Some(t) => t,
                None => {
                    cache_dir().context("no user cache directory on this system; pass --to DIR")?
                }
            };
            wowflow_data::prepare_output_dir(&to)?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:32} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut current = String::new();
            let reports =
                fetch_with_progress(&name, &to, base_url.as_deref(), &mut |file, have, total| {
                    if current != file {
                        current = file.to_string();
                        bar.set_message(current.clone());
                        bar.set_length(total);
                    }
                    bar.set_position(have);
                });
            bar.finish_and_clear();
            for r in reports? {
                let what = match r.outcome {
                    FetchOutcome::AlreadyPresent => "already present, verified".to_string(),
                    FetchOutcome::Downloaded {
                        bytes,
                        resumed_from: 0,
                    } => format!("downloaded {bytes} bytes, verified"),
                    FetchOutcome::Downloaded {
                        bytes,
                        resumed_from,
                    } => {
                        format!("downloaded {bytes} bytes (resumed at {resumed_from}), verified")
                    }
                    FetchOutcome::NoPublicUrl => {
                        "no public download address: place it by hand (see `data list`)".to_string()
                    }
                };
                println!("{:32} {what}\n{:32} -> {}", r.file, "", r.path.display());
            }
            Ok(())
        }
        DataCommand::Show {
            name,
            split,
            per_class,
            seed,
            out,
            scale,
            data_dir,
        } => {
            let dirs = DataDirs::new(data_dir.as_deref());
            let split: Split = split.parse()?;
            let canonical = dataset(&name)?.name;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{canonical}-{split}.png")));
            wowflow_data::prepare_output_file(&out)?;
            let set = load_split(&dirs, &name, split)?;
            let draws = draw_disjoint(&set, &[per_class], seed)?;
            let (h, w) = (set.height, set.width);
            let mut images = Vec::with_capacity(set.n_classes * per_class * h * w);
            for class in &draws[0] {
                for &i in class {
                    let img = set.image(i);
                    if set.channels == 3 {
                        // The grid is grayscale: show colour images by luminance (ITU-R BT.601).
                        let p = h * w;
                        images.extend(
                            (0..p).map(|k| {
                                0.299 * img[k] + 0.587 * img[p + k] + 0.114 * img[2 * p + k]
                            }),
                        );
                    } else {
                        images.extend_from_slice(&img[..h * w]);
                    }
                }
            }
            let grid = wowflow_viz::image_grid(
                &images,
                set.n_classes * per_class,
                h,
                w,
                per_class,
                scale,
            )?;
            wowflow_viz::save_png(&grid, &out)?;
            println!(
                "wrote {} ({} classes x {per_class} {split} images, seed {seed}, one row per class)",
                out.display(),
                set.n_classes
            );
            Ok(())
        }
    }
}

fn print_roots(dirs: &DataDirs) {
    println!("search order:");
    for r in &dirs.roots {
        println!("  {:14} {}", r.origin.to_string(), r.path.display());
    }
    println!("  {:14} dataset-specific system directories", "system");
    println!();
}

fn print_status(ds: &DatasetStatus) {
    let state = if ds.complete() {
        "complete"
    } else {
        "incomplete"
    };
    println!("{} — {} [{state}]", ds.spec.name, ds.spec.title);
    println!("  classes: {}", ds.spec.classes.join(", "));
    for f in &ds.files {
        let opt = if f.spec.required { "" } else { " (optional)" };
        match (&f.found, &f.check) {
            (Some((path, origin)), Some(check)) => {
                println!(
                    "  {:28} {check}{opt}\n  {:28} {} ({origin})",
                    f.spec.name,
                    "",
                    path.display()
                )
            }
            _ => println!("  {:28} not found{opt}", f.spec.name),
        }
    }
    println!("  note: {}\n", ds.spec.notes);
}
