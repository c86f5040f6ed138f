//! Colours: a categorical palette for classes and series, and the greys of the plot furniture.

use crate::image::Rgb;

/// Tableau 10, the default categorical palette of Tableau and of matplotlib's `tab10` successor:
/// ten hues chosen to stay distinct from each other, on white, and for most colour-blind viewers.
/// Ten matches the class count of every digit data set used here.
const TABLEAU10: [Rgb; 10] = [
    [0x4E, 0x79, 0xA7], // blue
    [0xF2, 0x8E, 0x2B], // orange
    [0xE1, 0x57, 0x59], // red
    [0x76, 0xB7, 0xB2], // teal
    [0x59, 0xA1, 0x4F], // green
    [0xED, 0xC9, 0x48], // yellow
    [0xB0, 0x7A, 0xA1], // purple
    [0xFF, 0x9D, 0xA7], // pink
    [0x9C, 0x75, 0x5F], // brown
    [0x5F, 0x5F, 0x5F], // dark grey (Tableau's light grey would vanish next to the faint target)
];

/// The colour of class (or series) `index`: Tableau 10 for the first ten, then hues spaced by the
/// golden angle so that any number of classes stays distinguishable and each index always gets
/// the same colour (frames of one flow agree without passing the class count around).
pub fn class_color(index: usize) -> Rgb {
    if let Some(c) = TABLEAU10.get(index) {
        return *c;
    }
    let hue = ((index - TABLEAU10.len()) as f32 * 137.507_77 + 15.0) % 360.0;
    // Alternate two lightness levels so neighbouring extra classes differ in value too.
    let (s, v) = if index.is_multiple_of(2) {
        (0.65, 0.80)
    } else {
        (0.55, 0.62)
    };
    hsv_to_rgb(hue, s, v)
}

/// `color` mixed with white: `amount` = 0 keeps it, 1 gives white. Used for the faint target.
pub fn lighten(color: Rgb, amount: f32) -> Rgb {
    let a = amount.clamp(0.0, 1.0);
    color.map(|c| (c as f32 + (255.0 - c as f32) * a).round() as u8)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> Rgb {
    let c = v * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|t| ((t + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

pub(crate) const WHITE: Rgb = [255, 255, 255];
pub(crate) const TEXT: Rgb = [34, 34, 34];
pub(crate) const AXIS: Rgb = [90, 90, 90];
pub(crate) const GRID: Rgb = [232, 232, 232];
pub(crate) const MINOR_GRID: Rgb = [244, 244, 244];

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: Rgb, b: Rgb) -> i32 {
        (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum()
    }

    #[test]
    fn the_ten_first_colours_are_clearly_distinct() {
        for i in 0..10 {
            for j in 0..i {
                let (a, b) = (class_color(i), class_color(j));
                assert!(
                    distance(a, b) > 60,
                    "classes {i} and {j} look alike: {a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn extra_colours_differ_from_their_neighbours() {
        for i in 10..200usize {
            for j in i.saturating_sub(4)..i {
                let (a, b) = (class_color(i), class_color(j));
                assert!(
                    distance(a, b) > 40,
                    "classes {i} and {j} look alike: {a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn lighten_moves_towards_white() {
        assert_eq!(lighten([0, 100, 200], 0.0), [0, 100, 200]);
        assert_eq!(lighten([0, 100, 200], 1.0), WHITE);
        let l = lighten([0, 100, 200], 0.5);
        assert!(l[0] > 0 && l[1] > 100 && l[2] > 200);
    }
}
