//! Kernels between class measures built on sliced-Wasserstein distances (docs/math.md §4).
//!
//! Every kernel is a function `K = κ(s)` of one sliced cost `s` between two class
//! measures: `s = SW_2²` for Riesz, Gaussian and IMQ, `s = SW_1` for Laplace. The WoW
//! gradient only needs `κ'(s)` (chain rule through `s`), so a kernel is exactly the pair
//! `(κ, κ')` plus which sliced cost it reads.

use crate::error::{invalid, Result};
use crate::ot1d::CostPower;
use serde::{Deserialize, Serialize};

/// A kernel `K(μ, ν) = κ(s(μ, ν))` on class measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kernel {
    /// Riesz: `K = −s^{r/2}` with `s = SW_2²` (`r = 1` gives `−SW_2`, the paper's main
    /// choice). Conditionally positive definite for `0 < r < 2`.
    Riesz {
        /// Exponent `r ∈ (0, 2)`.
        r: f64,
    },
    /// Gaussian: `K = exp(−s / (2h))` with `s = SW_2²`.
    Gaussian {
        /// Bandwidth `h > 0`, in the units of `SW_2²` (squared feature units).
        h: f64,
    },
    /// Inverse multiquadric: `K = (h + s)^{−1/2}` with `s = SW_2²`.
    Imq {
        /// Offset `h > 0`, in the units of `SW_2²` (squared feature units).
        h: f64,
    },
    /// Laplace: `K = exp(−s / h)` with `s = SW_1`.
    Laplace {
        /// Bandwidth `h > 0`, in the units of `SW_1` (feature units).
        h: f64,
    },
}

impl Kernel {
    /// Riesz with `r = 1`, the default of the documents.
    pub const RIESZ: Kernel = Kernel::Riesz { r: 1.0 };

    /// Builds a kernel by name (`riesz`, `gaussian`, `imq`, `laplace`) with an optional
    /// parameter (`r` for Riesz, bandwidth `h` otherwise); `None` takes the default of
    /// docs/math.md §4.
    pub fn by_name(name: &str, param: Option<f64>) -> Result<Self> {
        let k = match name.to_ascii_lowercase().as_str() {
            "riesz" => Kernel::Riesz {
                r: param.unwrap_or(1.0),
            },
            "gaussian" => Kernel::Gaussian {
                h: param.unwrap_or(0.1),
            },
            "imq" => Kernel::Imq {
                h: param.unwrap_or(1.0),
            },
            "laplace" => Kernel::Laplace {
                h: param.unwrap_or(0.5),
            },
            other => {
                return Err(invalid(
                    "kernel",
                    format!("unknown kernel `{other}` (expected riesz, gaussian, imq or laplace)"),
                ))
            }
        };
        k.validate()?;
        Ok(k)
    }

    /// Checks the parameter range.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Kernel::Riesz { r } if !(r > 0.0 && r < 2.0) => Err(invalid(
                "r",
                format!("Riesz exponent must lie in (0, 2), got {r}"),
            )),
            Kernel::Gaussian { h } | Kernel::Imq { h } | Kernel::Laplace { h }
                if !(h > 0.0 && h.is_finite()) =>
            {
                Err(invalid(
                    "h",
                    format!("bandwidth must be finite and > 0, got {h}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Which sliced cost `s` the kernel reads: `SW_2²` or `SW_1`.
    pub fn cost(&self) -> CostPower {
        match self {
            Kernel::Laplace { .. } => CostPower::One,
            _ => CostPower::Two,
        }
    }

    /// `κ(s)`. Negative rounding residue is read as 0; a NaN cost stays NaN (`f64::max`
    /// would turn it into 0 and hide an overflow in the projections).
    pub fn value(&self, s: f64) -> f64 {
        let s = if s < 0.0 { 0.0 } else { s };
        match *self {
            Kernel::Riesz { r } => -s.powf(r / 2.0),
            Kernel::Gaussian { h } => (-s / (2.0 * h)).exp(),
            Kernel::Imq { h } => (h + s).powf(-0.5),
            Kernel::Laplace { h } => (-s / h).exp(),
        }
    }

    /// `κ'(s)`. At `s = 0` the Riesz derivative is infinite for `r < 2`; callers never need
    /// it there because a pair at zero cost contributes no gradient (docs/math.md §5), and this
    /// returns 0 so that convention holds by construction.
    pub fn derivative(&self, s: f64) -> f64 {
        match *self {
            Kernel::Riesz { r } => {
                if s <= 0.0 {
                    0.0
                } else {
                    -(r / 2.0) * s.powf(r / 2.0 - 1.0)
                }
            }
            Kernel::Gaussian { h } => -self.value(s) / (2.0 * h),
            Kernel::Imq { h } => -0.5 * (h + if s < 0.0 { 0.0 } else { s }).powf(-1.5),
            Kernel::Laplace { h } => -self.value(s) / h,
        }
    }

    /// A short name for logs and file names.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Riesz { .. } => "riesz",
            Kernel::Gaussian { .. } => "gaussian",
            Kernel::Imq { .. } => "imq",
            Kernel::Laplace { .. } => "laplace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences() {
        let kernels = [
            Kernel::Riesz { r: 1.0 },
            Kernel::Riesz { r: 1.5 },
            Kernel::Gaussian { h: 0.3 },
            Kernel::Imq { h: 1.0 },
            Kernel::Laplace { h: 0.5 },
        ];
        for k in kernels {
            for s in [0.05, 0.7, 3.0] {
                let e = 1e-6;
                let fd = (k.value(s + e) - k.value(s - e)) / (2.0 * e);
                assert!(
                    (fd - k.derivative(s)).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{k:?} at {s}"
                );
            }
        }
    }

    #[test]
    fn by_name_and_validation() {
        assert_eq!(Kernel::by_name("Riesz", None).unwrap(), Kernel::RIESZ);
        assert_eq!(
            Kernel::by_name("gaussian", Some(0.05)).unwrap(),
            Kernel::Gaussian { h: 0.05 }
        );
        assert!(Kernel::by_name("cauchy", None).is_err());
        assert!(Kernel::by_name("gaussian", Some(0.0)).is_err());
        assert!(Kernel::by_name("riesz", Some(2.5)).is_err());
        assert_eq!(Kernel::RIESZ.derivative(0.0), 0.0);
        assert_eq!(Kernel::Laplace { h: 1.0 }.cost(), CostPower::One);
    }
}
