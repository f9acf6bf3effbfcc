//! Integer apportionment: split an amount of traffic weight over regions in
//! proportion to their shares, so a record's weights always add up to the
//! same total and the rounding remainder lands deterministically.

/// Splits `amount` over `shares` (one per slot) proportionally, by the
/// largest-remainder method. Remainder units go to the largest fractional
/// parts, ties to the slot that comes first in `shares` (callers order slots
/// by priority, then name). When every share is 0 the whole amount goes to the
/// first slot: an all-standby record (base weights 0) must still be served by
/// its most preferred region. An empty `shares` gets nothing.
pub(crate) fn apportion(amount: u64, shares: &[u64], out: &mut Vec<u64>) {
    out.clear();
    if shares.is_empty() {
        return;
    }
    let total: u128 = shares.iter().map(|s| u128::from(*s)).sum();
    if total == 0 {
        out.extend(
            shares
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { amount } else { 0 }),
        );
        return;
    }
    let amount_wide = u128::from(amount);
    let mut given: u64 = 0;
    for s in shares {
        // share ≤ total, so the quotient ≤ amount and fits in u64.
        let q = (amount_wide * u128::from(*s) / total) as u64;
        given += q;
        out.push(q);
    }
    let mut left = amount - given;
    if left == 0 {
        return;
    }
    // Fewer units are left than there are slots; hand them out by remainder.
    let mut order: Vec<(u128, usize)> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| (amount_wide * u128::from(*s) % total, i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in order {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::apportion;

    fn split(amount: u64, shares: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        apportion(amount, shares, &mut out);
        out
    }

    #[test]
    fn proportional_with_remainder_to_largest_fraction_then_first() {
        assert_eq!(split(100, &[100, 100]), vec![50, 50]);
        assert_eq!(split(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(split(10, &[1, 2]), vec![3, 7]);
        assert_eq!(split(0, &[5, 5]), vec![0, 0]);
    }

    #[test]
    fn all_zero_shares_give_everything_to_the_first_slot() {
        assert_eq!(split(100, &[0, 0]), vec![100, 0]);
        assert!(split(100, &[]).is_empty());
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let s = split(u64::from(u32::MAX) * 3, &[u64::from(u32::MAX); 3]);
        assert_eq!(s.iter().sum::<u64>(), u64::from(u32::MAX) * 3);
    }
}
