//! Jitter as a phase: each check runs at `start + phase + k × interval`,
//! with a phase in `[0, interval)` derived from (probe, target, check).
//!
//! Thousands of checks with the same interval thus spread evenly over it
//! instead of firing together, each stays on its own grid (no drift), the
//! phase is the same after a restart, and probes in different regions check
//! a target at different moments.

use std::time::Duration;

/// The phase of one check: a stable hash of its identity, modulo `interval`.
pub fn phase(probe_id: &str, target: &str, check: &str, interval: Duration) -> Duration {
    let nanos = interval.as_nanos().max(1);
    let h = fnv1a(&[probe_id.as_bytes(), target.as_bytes(), check.as_bytes()]);
    Duration::from_nanos((u128::from(h) % nanos) as u64)
}

/// FNV-1a over the parts, with a separator so ("ab","c") ≠ ("a","bc").
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // FNV's low bits mix poorly for similar keys; finish with a murmur step.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_stable_and_below_the_interval() {
        let i = Duration::from_secs(1);
        let a = phase("p", "svc:api@a", "http", i);
        assert_eq!(a, phase("p", "svc:api@a", "http", i));
        assert!(a < i);
        assert_ne!(a, phase("q", "svc:api@a", "http", i));
    }

    #[test]
    fn phases_spread_evenly() {
        let i = Duration::from_secs(1);
        let mut buckets = [0u32; 10];
        for t in 0..10_000 {
            let p = phase("probe", &format!("svc:t{t}@a"), "http", i);
            buckets[(p.as_millis() / 100) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "uneven spread: {buckets:?}");
        }
    }
}
