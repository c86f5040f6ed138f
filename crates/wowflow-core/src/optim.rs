//! Optimisers for the explicit WoW scheme `x ← x − τ ∇_{W_{W_2}} F` (docs/math.md §5).
//!
//! The state is plain vectors so a checkpoint can store it and a resumed run continues
//! bit-identically.

use crate::error::{invalid, shape, Result};
use serde::{Deserialize, Serialize};

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Method {
    /// `x ← x − τ g`.
    Gd,
    /// Heavy ball exactly as in the paper's code: `v ← g + m v; x ← x − τ v`.
    Momentum {
        /// Momentum coefficient `m` (the experiments of docs/math.md §9 use `0.9`;
        /// [`Method::by_name`] requires `0 ≤ m < 1`).
        m: f64,
    },
    /// Adam (Kingma & Ba) with bias correction.
    Adam {
        /// Decay `β1 ∈ [0, 1)` of the first moment (`0.9` from [`Method::by_name`]).
        beta1: f64,
        /// Decay `β2 ∈ [0, 1)` of the second moment (`0.999` from [`Method::by_name`]).
        beta2: f64,
        /// `ε > 0` added to `√v̂` in the denominator (`1e-8` from [`Method::by_name`]).
        eps: f64,
    },
}

impl Method {
    /// By name (`gd`, `momentum`, `adam`); `momentum` is the coefficient for `momentum`.
    pub fn by_name(name: &str, momentum: f64) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "gd" | "sgd" => Ok(Method::Gd),
            "momentum" | "heavy-ball" => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(invalid(
                        "momentum",
                        format!("must lie in [0, 1), got {momentum}"),
                    ));
                }
                Ok(Method::Momentum { m: momentum })
            }
            "adam" => Ok(Method::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            }),
            other => Err(invalid(
                "optimizer",
                format!("unknown optimizer `{other}` (expected gd, momentum or adam)"),
            )),
        }
    }
}

/// Step size as a function of the step index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// `τ_k = τ`.
    Constant,
    /// `τ_k = τ · factor^{⌊k / every⌋}`.
    Step {
        /// Updates between two decays (`0` is read as `1`).
        every: usize,
        /// Multiplier applied to the step size at each decay, e.g. `0.5`.
        factor: f64,
    },
}

impl Schedule {
    fn rate(&self, base: f64, step: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, factor } => base * factor.powi((step / every.max(1)) as i32),
        }
    }
}

/// Optimiser state: velocities / moments and the step counter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Heavy-ball velocity or Adam's first moment.
    pub first: Vec<f32>,
    /// Adam's second moment.
    pub second: Vec<f32>,
    /// Updates applied so far.
    pub t: u64,
}

/// An optimiser: method, base step size `τ` and schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    /// The update rule.
    pub method: Method,
    /// Base step size `τ > 0` (the schedule's `τ_0`).
    pub lr: f64,
    /// How `τ` changes with the update count ([`Schedule::Constant`] from [`Optimizer::new`]).
    pub schedule: Schedule,
}

impl Optimizer {
    /// Checks `τ > 0` and the method's parameters.
    pub fn new(method: Method, lr: f64) -> Result<Self> {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(invalid(
                "lr",
                format!("step size must be finite and > 0, got {lr}"),
            ));
        }
        if let Method::Adam { beta1, beta2, eps } = method {
            if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && eps > 0.0) {
                return Err(invalid("adam", "need 0 ≤ β1, β2 < 1 and ε > 0"));
            }
        }
        Ok(Self {
            method,
            lr,
            schedule: Schedule::Constant,
        })
    }

    /// Uses a step-size schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The step size of update `t` (0-based) under the schedule.
    pub fn lr_at(&self, t: u64) -> f64 {
        self.schedule.rate(self.lr, t as usize)
    }

    /// Applies one update to `x` given the gradient `g` (same length).
    pub fn step(&self, x: &mut [f32], g: &[f32], state: &mut OptimizerState) -> Result<()> {
        if g.len() != x.len() {
            return Err(shape("gradient", x.len(), g.len()));
        }
        let lr = self.lr_at(state.t) as f32;
        match self.method {
            Method::Gd => x.iter_mut().zip(g).for_each(|(x, &g)| *x -= lr * g),
            Method::Momentum { m } => {
                state.first.resize(x.len(), 0.0);
                let m = m as f32;
                for ((x, v), &g) in x.iter_mut().zip(state.first.iter_mut()).zip(g) {
                    *v = g + m * *v;
                    *x -= lr * *v;
                }
            }
            Method::Adam { beta1, beta2, eps } => {
                state.first.resize(x.len(), 0.0);
                state.second.resize(x.len(), 0.0);
                let t = state.t as i32 + 1;
                let c1 = (1.0 - beta1.powi(t)) as f32;
                let c2 = (1.0 - beta2.powi(t)) as f32;
                let (b1, b2, eps) = (beta1 as f32, beta2 as f32, eps as f32);
                for (((x, m), v), &g) in x
                    .iter_mut()
                    .zip(state.first.iter_mut())
                    .zip(state.second.iter_mut())
                    .zip(g)
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *x -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            }
        }
        state.t += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_follows_the_papers_recursion() {
        let opt = Optimizer::new(Method::Momentum { m: 0.5 }, 0.1).unwrap();
        let mut st = OptimizerState::default();
        let mut x = vec![1.0f32];
        opt.step(&mut x, &[2.0], &mut st).unwrap(); // v = 2, x = 1 − 0.2
        assert!((x[0] - 0.8).abs() < 1e-7);
        opt.step(&mut x, &[2.0], &mut st).unwrap(); // v = 2 + 1 = 3, x = 0.8 − 0.3
        assert!((x[0] - 0.5).abs() < 1e-7);
        assert_eq!(st.t, 2);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let opt = Optimizer::new(Method::by_name("adam", 0.0).unwrap(), 0.01).unwrap();
        let mut st = OptimizerState::default();
        let mut x = vec![0.0f32, 0.0];
        opt.step(&mut x, &[5.0, -0.1], &mut st).unwrap();
        assert!((x[0] + 0.01).abs() < 1e-6 && (x[1] - 0.01).abs() < 1e-6);
    }

    #[test]
    fn gd_minimises_a_quadratic_and_schedule_decays() {
        let opt = Optimizer::new(Method::Gd, 0.25)
            .unwrap()
            .with_schedule(Schedule::Step {
                every: 20,
                factor: 0.5,
            });
        assert_eq!(opt.schedule.rate(0.25, 45), 0.0625);
        let mut st = OptimizerState::default();
        let mut x = vec![4.0f32];
        for _ in 0..50 {
            let g = [2.0 * x[0]];
            opt.step(&mut x, &g, &mut st).unwrap();
        }
        assert!(x[0].abs() < 1e-3);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Optimizer::new(Method::Gd, 0.0).is_err());
        assert!(Optimizer::new(Method::Gd, f64::NAN).is_err());
        assert!(Method::by_name("momentum", 1.5).is_err());
        assert!(Method::by_name("lbfgs", 0.9).is_err());
    }
}
