//! Where to put tick marks and how to label them, for linear and base-10 log axes.
//!
//! Linear ticks use the classic 1–2–5 "nice number" steps so labels are short round numbers;
//! log ticks sit on powers of ten (with 2× and 5× added when the range spans less than two
//! decades, so a short loss curve still gets labels).

/// One tick: position in data units, and its label (empty for unlabelled minor ticks).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tick {
    pub value: f64,
    pub label: String,
    pub major: bool,
}

/// Ticks for a linear axis on `[lo, hi]` (`lo < hi`), aiming at about `target` labels.
pub(crate) fn linear(lo: f64, hi: f64, target: usize) -> Vec<Tick> {
    let step = nice_step((hi - lo) / target.max(1) as f64);
    // A span that overflows (±1e308) or underflows to 0 would make the tick count explode or
    // vanish: show no ticks rather than hang.
    if !((hi - lo) / step).is_finite() || (hi - lo) / step > 100.0 || step <= 0.0 {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let values: Vec<f64> = (first..=last.max(first - 1))
        .map(|k| {
            let v = k as f64 * step;
            // Kill −0 and float noise such as 0.30000000000000004.
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let labels = format_all(&values, step);
    values
        .into_iter()
        .zip(labels)
        .map(|(value, label)| Tick {
            value,
            label,
            major: true,
        })
        .collect()
}

/// Ticks for a log10 axis on `[lo, hi]` (`0 < lo < hi`), aiming at about `target` labels.
pub(crate) fn log10(lo: f64, hi: f64, target: usize) -> Vec<Tick> {
    if !(lo > 0.0 && hi.is_finite() && lo < hi) {
        return Vec::new();
    }
    // f64 spans 10⁻³²⁴..10³⁰⁸; clamping keeps the decade loops short whatever the input.
    let d0 = (lo.log10().floor() as i32).clamp(-330, 330);
    let d1 = (hi.log10().ceil() as i32).clamp(-330, 330);
    let plain = d0 >= -2 && d1 <= 4;
    let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let decades: Vec<i32> = (d0..=d1).filter(|&k| inside(10f64.powi(k))).collect();
    if decades.len() < 2 {
        // Less than two decades: 1-2-5 labels, and if even that gives under two labels the
        // range is so narrow that linear ticks (placed on the log axis) read best.
        let mut ticks: Vec<Tick> = Vec::new();
        for k in d0..=d1 {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(k);
                if inside(v) {
                    ticks.push(Tick {
                        value: v,
                        label: power_label(m, k, plain),
                        major: true,
                    });
                }
            }
        }
        if ticks.len() < 2 {
            return linear(lo, hi, target.min(4));
        }
        add_minor(&mut ticks, d0, d1, inside);
        return ticks;
    }
    let stride = decades.len().div_ceil(target.max(1)).max(1);
    let mut ticks: Vec<Tick> = decades
        .iter()
        .filter(|&&k| k.rem_euclid(stride as i32) == 0)
        .map(|&k| Tick {
            value: 10f64.powi(k),
            label: power_label(1.0, k, plain),
            major: true,
        })
        .collect();
    if stride == 1 {
        add_minor(&mut ticks, d0, d1, inside);
    }
    ticks
}

fn add_minor(ticks: &mut Vec<Tick>, d0: i32, d1: i32, inside: impl Fn(f64) -> bool) {
    for k in d0..=d1 {
        for m in 2..=9 {
            let v = m as f64 * 10f64.powi(k);
            if inside(v) && !ticks.iter().any(|t| (t.value / v - 1.0).abs() < 1e-9) {
                ticks.push(Tick {
                    value: v,
                    label: String::new(),
                    major: false,
                });
            }
        }
    }
}

/// `m·10^k` written as `10³`, `2×10⁻⁴`, or plainly (`0.01`, `200`) when that is as short.
///
/// `plain` asks for plain decimals; callers set it from the whole axis range so one axis never
/// mixes `0.01` with `10⁻⁵`.
fn power_label(m: f64, k: i32, plain: bool) -> String {
    if plain {
        let v = m * 10f64.powi(k);
        return format!("{}", (v * 1e6).round() / 1e6);
    }
    // Typeset exponent: the embedded font has no superscript minus, so `text` raises it.
    let exp = format!("{}{}", crate::text::SUP, minus(&k.to_string()));
    if m == 1.0 {
        format!("10{exp}")
    } else {
        format!("{m}×10{exp}")
    }
}

/// Replaces hyphens by the typographic minus sign, as printed axes do.
fn minus(s: &str) -> String {
    s.replace('-', "−")
}

/// The {1, 2, 5}·10^k step nearest to `raw` (geometrically), so the tick count stays close to
/// the target instead of always rounding towards fewer ticks.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 {
        raw
    } else {
        1.0
    };
    let mag = 10f64.powf(raw.log10().floor());
    let r = raw / mag;
    let m = if r < 1.5 {
        1.0
    } else if r < 3.0 {
        2.0
    } else if r < 7.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Labels for evenly spaced `values` with spacing `step`: fixed-point with just enough decimals,
/// or scientific when the numbers are very large or very small.
fn format_all(values: &[f64], step: f64) -> Vec<String> {
    let biggest = values.iter().fold(0f64, |m, v| m.max(v.abs()));
    if biggest >= 1e5 || (biggest > 0.0 && biggest < 1e-3) || step < 1e-4 {
        // Fewest mantissa digits that keep neighbouring labels distinct.
        for precision in 0..6 {
            let labels: Vec<String> = values.iter().map(|v| sci(*v, precision)).collect();
            if labels.windows(2).all(|w| w[0] != w[1]) {
                return labels;
            }
        }
        return values.iter().map(|v| sci(*v, 6)).collect();
    }
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    values
        .iter()
        .map(|v| minus(&format!("{v:.decimals$}")))
        .collect()
}

fn sci(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    minus(&format!("{v:.precision$e}"))
}

/// Formats one number compactly for titles (`3.2e-2`, `120`, `0.25`): three significant digits.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.3}");
    // Trim trailing zeros after the decimal point: "0.250" → "0.25", "120.000" → "120".
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[Tick]) -> Vec<&str> {
        ticks
            .iter()
            .filter(|t| t.major)
            .map(|t| t.label.as_str())
            .collect()
    }

    #[test]
    fn linear_ticks_are_round() {
        assert_eq!(
            labels(&linear(0.0, 10.0, 5)),
            ["0", "2", "4", "6", "8", "10"]
        );
        assert_eq!(
            labels(&linear(-1.1, 1.1, 5)),
            ["−1.0", "−0.5", "0.0", "0.5", "1.0"]
        );
        assert_eq!(
            labels(&linear(0.0, 1000.0, 4)),
            ["0", "200", "400", "600", "800", "1000"]
        );
        assert_eq!(
            labels(&linear(0.0, 0.0003, 3)),
            ["0", "1e−4", "2e−4", "3e−4"]
        );
        assert_eq!(labels(&linear(0.0, 2e6, 2)), ["0", "1e6", "2e6"]);
    }

    #[test]
    fn log_ticks_on_decades_with_minor_ticks() {
        let t = log10(1e-4, 1.0, 6);
        assert_eq!(
            labels(&t),
            [
                "10\u{1}−4",
                "10\u{1}−3",
                "10\u{1}−2",
                "10\u{1}−1",
                "10\u{1}0"
            ]
        );
        assert_eq!(
            labels(&log10(0.01, 900.0, 6)),
            ["0.01", "0.1", "1", "10", "100"]
        );
        assert!(t.iter().any(|t| !t.major && (t.value - 2e-3).abs() < 1e-12));
    }

    #[test]
    fn narrow_log_range_still_gets_two_labels() {
        assert_eq!(labels(&log10(0.015, 0.09, 5)), ["0.02", "0.05"]);
        assert!(labels(&log10(0.031, 0.034, 5)).len() >= 2);
    }

    #[test]
    fn many_decades_are_thinned() {
        let t = log10(1e-12, 1e6, 5);
        let n = labels(&t).len();
        assert!((3..=7).contains(&n), "{n}");
    }

    #[test]
    fn absurd_ranges_give_few_or_no_ticks_without_hanging() {
        assert!(linear(-1e308, 1e308, 5).len() <= 11);
        assert!(linear(f64::MIN, f64::MAX, 5).len() <= 11);
        assert!(linear(1.0, 1.0 + 1e-12, 5).len() <= 11);
        assert!(log10(1e-300, 1e300, 5).len() <= 11);
        assert!(log10(5e-324, 1.0, 5).len() <= 11);
        assert!(log10(0.0, 1.0, 5).is_empty());
    }

    #[test]
    fn numbers_for_titles() {
        assert_eq!(format_number(0.032), "0.032");
        assert_eq!(format_number(0.0032), "3.2e-3");
        assert_eq!(format_number(120.0), "120");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(0.0), "0");
    }
}
