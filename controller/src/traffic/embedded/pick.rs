//! Weighted choice for one answer: which record(s) a query gets.
//!
//! Weight 0 means "no traffic" and is never picked while any region has a
//! weight above 0; when every region is at 0 (a forced change) all regions
//! are treated alike, so the name still resolves (fail open).

use rand::Rng;

/// One record and its current weight.
pub trait Weighted {
    /// The weight (0 = no traffic).
    fn weight(&self) -> u32;
}

/// The index of one entry, picked with probability weight / total; uniform
/// when every weight is 0. `None` only for an empty slice.
pub fn one<T: Weighted, R: Rng + ?Sized>(entries: &[T], rng: &mut R) -> Option<usize> {
    if entries.is_empty() {
        return None;
    }
    let total: u64 = entries.iter().map(|e| u64::from(e.weight())).sum();
    if total == 0 {
        return Some(rng.random_range(0..entries.len()));
    }
    let mut ticket = rng.random_range(0..total);
    for (i, e) in entries.iter().enumerate() {
        let w = u64::from(e.weight());
        if ticket < w {
            return Some(i);
        }
        ticket -= w;
    }
    Some(entries.len() - 1)
}

/// Indexes of every entry of weight > 0 (all entries when every weight is
/// 0), in weighted random order: each position is a weighted pick among
/// the entries not yet placed, so the first is distributed like [`one`].
pub fn ordered<T: Weighted, R: Rng + ?Sized>(entries: &[T], rng: &mut R) -> Vec<usize> {
    let all_zero = entries.iter().all(|e| e.weight() == 0);
    let mut left: Vec<(usize, u64)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| all_zero || e.weight() > 0)
        .map(|(i, e)| (i, if all_zero { 1 } else { u64::from(e.weight()) }))
        .collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|(_, w)| w).sum();
        let mut ticket = rng.random_range(0..total);
        let mut at = left.len() - 1;
        for (k, (_, w)) in left.iter().enumerate() {
            if ticket < *w {
                at = k;
                break;
            }
            ticket -= w;
        }
        out.push(left.remove(at).0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    impl Weighted for u32 {
        fn weight(&self) -> u32 {
            *self
        }
    }

    #[test]
    fn one_follows_the_weights_and_skips_zero() {
        let mut rng = StdRng::seed_from_u64(7);
        let w = [60u32, 30, 10, 0];
        let mut n = [0usize; 4];
        for _ in 0..100_000 {
            if let Some(i) = one(&w, &mut rng) {
                n[i] += 1;
            }
        }
        assert_eq!(n[3], 0);
        for (i, share) in [60.0, 30.0, 10.0].iter().enumerate() {
            let got = n[i] as f64 / 1_000.0;
            assert!((got - share).abs() < 1.0, "region {i}: {got}% vs {share}%");
        }
    }

    #[test]
    fn all_zero_picks_every_entry() {
        let mut rng = StdRng::seed_from_u64(7);
        let w = [0u32, 0];
        let mut n = [0usize; 2];
        for _ in 0..1_000 {
            if let Some(i) = one(&w, &mut rng) {
                n[i] += 1;
            }
        }
        assert!(n[0] > 0 && n[1] > 0);
        assert_eq!(ordered(&w, &mut rng).len(), 2);
    }

    #[test]
    fn ordered_lists_nonzero_entries_once_heaviest_first_most_often() {
        let mut rng = StdRng::seed_from_u64(7);
        let w = [1u32, 0, 99];
        let mut first_heavy = 0;
        for _ in 0..1_000 {
            let o = ordered(&w, &mut rng);
            assert_eq!(o.len(), 2);
            assert!(o.contains(&0) && o.contains(&2));
            if o[0] == 2 {
                first_heavy += 1;
            }
        }
        assert!(first_heavy > 950);
    }
}
