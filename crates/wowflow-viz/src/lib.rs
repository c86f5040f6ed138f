//! Pictures of wowflow runs, in pure Rust (no system fonts or libraries):
//!
//! - [`scatter`]: one frame of a 2-D flow — particles coloured by class over the faint target,
//!   with fixed axes ([`Bounds`]) so frames line up;
//! - [`save_gif`]: frames into a looping animated GIF;
//! - [`line_plot`]: loss or accuracy curves, optionally on a log scale, with a legend;
//! - [`image_grid`]: a batch of grayscale images (flowed digits) as a grid, one row per class;
//! - [`side_by_side`]: captioned panels, e.g. the same flow under different objectives.
//!
//! Every function takes plain slices and returns an [`Rgb8Image`]; [`save_png`] and
//! [`save_gif`] write files atomically. Bad input (wrong lengths, NaN, empty series, impossible
//! sizes) is a [`VizError`] that names the argument, never a panic.
//!
//! ```
//! use wowflow_viz::{scatter, Bounds, ScatterFrame};
//! let points = [[0.0f32, 0.0], [1.0, 1.0]];
//! let frame = ScatterFrame { points: &points, labels: &[0, 1], target_points: &[],
//!                            target_labels: &[], title: "step 0".into() };
//! let bounds = Bounds::covering(&[&points], 0.05);
//! let img = scatter(&frame, &bounds, (480, 480))?;
//! assert_eq!((img.width(), img.height()), (480, 480));
//! # Ok::<(), wowflow_viz::VizError>(())
//! ```

#![warn(missing_docs)]

mod axes;
mod bars;
mod compose;
mod error;
mod image;
mod io;
mod line;
mod palette;
mod raster;
mod scatter;
mod text;
mod ticks;

pub use bars::{bar_chart, BarChart, BarSeries};
pub use compose::{image_grid, side_by_side, SEPARATOR};
pub use error::VizError;
pub use image::{Rgb, Rgb8Image, MAX_PIXELS};
pub use io::{encode_gif, encode_png, save_gif, save_png};
pub use line::{line_plot, LinePlot, Series};
pub use palette::{class_color, lighten};
pub use scatter::{scatter, Bounds, ScatterFrame};
pub use ticks::format_number;
