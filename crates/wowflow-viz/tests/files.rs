//! Files written by wowflow-viz decode back, with the standard `png` and `gif` decoders, to the
//! pictures that were rendered.

use std::path::PathBuf;

use wowflow_viz::{
    class_color, encode_gif, image_grid, save_gif, save_png, scatter, Bounds, Rgb8Image,
    ScatterFrame, VizError,
};

/// A fresh directory for one test (no `tempfile` dependency for so little).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wowflow-viz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Decodes every frame of a GIF and composites it over the previous one, as a viewer does.
fn decode_gif(bytes: &[u8]) -> (gif::Repeat, Vec<u16>, Vec<Rgb8Image>) {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut d = opts.read_info(bytes).unwrap();
    let (w, h) = (d.width() as usize, d.height() as usize);
    let mut canvas = vec![0u8; 3 * w * h];
    let mut frames = Vec::new();
    let mut delays = Vec::new();
    while let Some(f) = d.read_next_frame().unwrap() {
        for y in 0..f.height as usize {
            for x in 0..f.width as usize {
                let s = 4 * (y * f.width as usize + x);
                if f.buffer[s + 3] == 0 {
                    continue;
                }
                let t = 3 * ((f.top as usize + y) * w + f.left as usize + x);
                canvas[t..t + 3].copy_from_slice(&f.buffer[s..s + 3]);
            }
        }
        delays.push(f.delay);
        frames.push(Rgb8Image::from_raw(w as u32, h as u32, canvas.clone()).unwrap());
    }
    (d.repeat(), delays, frames)
}

fn flow_frames(n: usize) -> Vec<Rgb8Image> {
    let target: Vec<[f32; 2]> = (0..60)
        .map(|i| {
            let a = i as f32 * 0.3;
            [a.cos(), a.sin()]
        })
        .collect();
    let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
    let bounds = Bounds::covering(&[&target, &[[2.0, 2.0]]], 0.05);
    (0..n)
        .map(|k| {
            let t = k as f32 / n as f32;
            let points: Vec<[f32; 2]> = target
                .iter()
                .map(|p| [p[0] * t + 2.0 * (1.0 - t), p[1] * t + 2.0 * (1.0 - t)])
                .collect();
            let frame = ScatterFrame {
                points: &points,
                labels: &labels,
                target_points: &target,
                target_labels: &labels,
                title: format!("step {k}"),
            };
            scatter(&frame, &bounds, (240, 200)).unwrap()
        })
        .collect()
}

#[test]
fn png_decodes_back_to_the_same_pixels_and_leaves_no_temporary_file() {
    let dir = scratch("png");
    let img = flow_frames(1).remove(0);
    let path = dir.join("frame.png");
    save_png(&img, &path).unwrap();
    // Overwriting goes through the same rename: still one file.
    save_png(&img, &path).unwrap();
    let (w, h, pixels) = decode_png(&path);
    assert_eq!((w, h), (240, 200));
    assert_eq!(pixels, img.pixels());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["frame.png"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writing_into_a_missing_directory_names_the_path() {
    let img = Rgb8Image::filled(4, 4, [0; 3]).unwrap();
    let path = std::env::temp_dir().join("wowflow-viz-no-such-dir/sub/x.png");
    match save_png(&img, &path) {
        Err(e @ VizError::Io { .. }) => assert!(e.to_string().contains("no-such-dir"), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn gif_decodes_to_every_frame_at_the_right_size_looping_forever() {
    let frames = flow_frames(6);
    let dir = scratch("gif");
    let path = dir.join("flow.gif");
    save_gif(&frames, 120, &path).unwrap();
    let (repeat, delays, decoded) = decode_gif(&std::fs::read(&path).unwrap());
    assert_eq!(repeat, gif::Repeat::Infinite);
    assert_eq!(decoded.len(), 6);
    assert_eq!(delays, vec![12; 6]);
    for (a, b) in frames.iter().zip(&decoded) {
        assert_eq!((b.width(), b.height()), (240, 200));
        // Quantised to 255 colours: flat colours exact, anti-aliased edges close.
        let err: u64 = a
            .pixels()
            .iter()
            .zip(b.pixels())
            .map(|(&x, &y)| (x as i64 - y as i64).unsigned_abs())
            .sum();
        let mean = err as f64 / a.pixels().len() as f64;
        assert!(mean < 1.0, "mean abs error {mean}");
        assert_eq!(a.pixel(0, 0), b.pixel(0, 0));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gif_of_few_colours_is_exact_and_small() {
    // A grid image moving one cell per frame: few colours, so the palette is exact.
    let frames: Vec<Rgb8Image> = (0..4)
        .map(|k| {
            let mut values = vec![0f32; 4 * 8 * 8];
            values[k * 64..(k + 1) * 64].fill(1.0);
            image_grid(&values, 4, 8, 8, 4, 4).unwrap()
        })
        .collect();
    let bytes = encode_gif(&frames, 50).unwrap();
    let (_, _, decoded) = decode_gif(&bytes);
    assert_eq!(decoded, frames);
    assert!(bytes.len() < 4000, "{} bytes", bytes.len());
    // Identical frames still count as frames.
    let same = vec![frames[0].clone(), frames[0].clone()];
    assert_eq!(decode_gif(&encode_gif(&same, 50).unwrap()).2.len(), 2);
}

#[test]
fn gif_rejects_no_frames_and_mixed_sizes() {
    assert!(matches!(encode_gif(&[], 100), Err(VizError::Empty { .. })));
    let a = Rgb8Image::filled(4, 4, class_color(0)).unwrap();
    let b = Rgb8Image::filled(5, 4, class_color(1)).unwrap();
    let e = encode_gif(&[a, b], 100).unwrap_err();
    assert!(e.to_string().contains("frames[1]"), "{e}");
}
