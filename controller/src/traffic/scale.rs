//! Fitting the engine's relative weights into a backend's range.
//!
//! The engine's weights are relative and unbounded: evacuating one of three
//! regions of weight 100 leaves 150/150/0, and a region's base weight plus
//! redistributed share can pass 255. Route 53 only accepts 0–255, so instead
//! of refusing such a change the backend scales it proportionally: shares
//! are kept (to rounding), a 0 stays 0 and a non-zero weight never rounds
//! down to 0 (that would silently evacuate a region).

use super::Weights;

/// Route 53's largest weight.
pub const ROUTE53_MAX: u32 = 255;

/// `weights` scaled so the largest is at most `max`; unchanged when they
/// already fit. Shares are kept to within rounding; non-zero stays non-zero.
pub fn fit(weights: &Weights, max: u32) -> Weights {
    let top = weights.values().copied().max().unwrap_or(0);
    if top <= max || max == 0 {
        return weights.clone();
    }
    weights
        .iter()
        .map(|(region, &w)| {
            let scaled = if w == 0 {
                0
            } else {
                // Round half up in integer arithmetic; u64 cannot overflow
                // (u32 × u32).
                let exact =
                    (u64::from(w) * u64::from(max) * 2 + u64::from(top)) / (2 * u64::from(top));
                u32::try_from(exact).unwrap_or(max).clamp(1, max)
            };
            (region.clone(), scaled)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, u32)]) -> Weights {
        pairs.iter().map(|(r, w)| (r.to_string(), *w)).collect()
    }

    #[test]
    fn weights_that_fit_are_unchanged() {
        let x = w(&[("a", 255), ("b", 0), ("c", 17)]);
        assert_eq!(fit(&x, ROUTE53_MAX), x);
    }

    #[test]
    fn larger_weights_scale_proportionally_and_keep_zero_and_nonzero() {
        assert_eq!(
            fit(&w(&[("a", 300), ("b", 100), ("c", 0)]), ROUTE53_MAX),
            w(&[("a", 255), ("b", 85), ("c", 0)])
        );
        assert_eq!(
            fit(&w(&[("a", 100_000), ("b", 1)]), ROUTE53_MAX),
            w(&[("a", 255), ("b", 1)])
        );
        assert_eq!(
            fit(&w(&[("a", u32::MAX), ("b", u32::MAX / 2)]), ROUTE53_MAX),
            w(&[("a", 255), ("b", 127)])
        );
    }
}
