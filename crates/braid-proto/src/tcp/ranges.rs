//! A set of disjoint half-open `u64` ranges kept in a B-tree: O(log n) insert and lookup.
//!
//! Used for the receiver's out-of-order map and for the sender's SACK scoreboard. Offsets are
//! 64-bit stream positions, so sequence-number wrap-around never reaches this structure.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent half-open ranges `[start, end)`, with their total size.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    map: BTreeMap<u64, u64>,
    total: u64,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no range is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Inserts `[start, end)`, merging with overlapping or adjacent ranges. Returns the number
    /// of bytes that were not covered before.
    pub fn insert(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let (mut s, mut e) = (start, end);
        if let Some((_, &pe)) = self.map.range(..=s).next_back() {
            if pe >= e {
                return 0;
            }
        }
        // The common case: the highest range grows at its end (data arriving in order
        // beyond a hole): changed in place.
        if let Some((&a, last)) = self.map.iter_mut().next_back() {
            if a <= s && s <= *last {
                let added = e - *last;
                *last = e;
                self.total += added;
                return added;
            }
        }
        let mut removed = 0;
        while let Some((&a, &b)) = self.map.range(..=e).next_back() {
            if b < s {
                break;
            }
            self.map.remove(&a);
            removed += b - a;
            s = s.min(a);
            e = e.max(b);
        }
        self.map.insert(s, e);
        let added = (e - s) - removed;
        self.total += added;
        added
    }

    /// Removes everything below `at`.
    pub fn remove_below(&mut self, at: u64) {
        while let Some((&a, &b)) = self.map.iter().next() {
            if a >= at {
                break;
            }
            self.map.remove(&a);
            self.total -= b - a;
            if b > at {
                self.map.insert(at, b);
                self.total += b - at;
                break;
            }
        }
    }

    /// Removes `[start, end)`, splitting ranges that straddle its edges. Returns the number
    /// of bytes that were covered.
    pub fn remove(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let mut removed = 0;
        // A range starting below `start` that reaches into it.
        if let Some((&a, &b)) = self.map.range(..start).next_back() {
            if b > start {
                self.map.insert(a, start);
                if b > end {
                    self.map.insert(end, b);
                }
                let cut = b.min(end) - start;
                self.total -= cut;
                removed += cut;
            }
        }
        while let Some((&a, &b)) = self.map.range(start..end).next() {
            self.map.remove(&a);
            if b > end {
                self.map.insert(end, b);
            }
            let cut = b.min(end) - a;
            self.total -= cut;
            removed += cut;
        }
        removed
    }

    /// The range containing `x`, if any.
    pub fn containing(&self, x: u64) -> Option<(u64, u64)> {
        match self.map.range(..=x).next_back() {
            Some((&a, &b)) if b > x => Some((a, b)),
            _ => None,
        }
    }

    /// True when `[start, end)` overlaps or is adjacent to a held range (inserting it would
    /// not add a range).
    pub fn touches(&self, start: u64, end: u64) -> bool {
        let before = matches!(self.map.range(..=start).next_back(), Some((_, &e)) if e >= start);
        let after = matches!(self.map.range(start..).next(), Some((&s, _)) if s <= end);
        before || after
    }

    /// The pieces of `[from, to)` no held range covers, lowest first.
    pub fn gaps(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut p = from;
        while p < to {
            if let Some((_, e)) = self.containing(p) {
                p = e.min(to);
                continue;
            }
            let next = self.next_from(p).map_or(to, |(s, _)| s.min(to));
            out.push((p, next));
            p = next;
        }
        out
    }

    /// The first range starting at or after `x`.
    pub fn next_from(&self, x: u64) -> Option<(u64, u64)> {
        self.map.range(x..).next().map(|(&a, &b)| (a, b))
    }

    /// The lowest range.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.map.iter().next().map(|(&a, &b)| (a, b))
    }

    /// The highest range.
    pub fn last(&self) -> Option<(u64, u64)> {
        self.map.iter().next_back().map(|(&a, &b)| (a, b))
    }

    /// Removes and returns the lowest range.
    pub fn pop_first(&mut self) -> Option<(u64, u64)> {
        let (a, b) = self.map.pop_first()?;
        self.total -= b - a;
        Some((a, b))
    }

    /// Ranges from the highest down.
    pub fn iter_rev(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().rev().map(|(&a, &b)| (a, b))
    }

    /// Ranges from the lowest up.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(&a, &b)| (a, b))
    }

    /// Bytes covered inside `[from, to)`.
    pub fn covered_in(&self, from: u64, to: u64) -> u64 {
        if from >= to {
            return 0;
        }
        let mut sum = 0;
        let start_key = match self.map.range(..=from).next_back() {
            Some((&a, _)) => a,
            None => from,
        };
        for (&a, &b) in self.map.range(start_key..to) {
            let lo = a.max(from);
            let hi = b.min(to);
            if hi > lo {
                sum += hi - lo;
            }
        }
        sum
    }

    /// Removes every range.
    pub fn clear(&mut self) {
        self.map.clear();
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_what_no_range_covers() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(r.gaps(0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(r.gaps(15, 35), vec![(20, 30)]);
        assert_eq!(r.gaps(12, 18), vec![]);
        assert_eq!(r.gaps(5, 5), vec![]);
    }

    #[test]
    fn remove_splits_and_counts() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(r.remove(15, 35), 10);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(10, 15), (35, 40)]);
        assert_eq!(r.total(), 10);
        assert_eq!(r.remove(11, 12), 1);
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![(10, 11), (12, 15), (35, 40)]
        );
        assert_eq!(r.remove(0, 100), 9);
        assert!(r.is_empty());
        assert_eq!(r.total(), 0);
        assert_eq!(r.remove(5, 5), 0);
    }

    #[test]
    fn insert_merges_and_counts() {
        let mut r = RangeSet::new();
        assert_eq!(r.insert(10, 20), 10);
        assert_eq!(r.insert(30, 40), 10);
        assert_eq!(r.insert(15, 25), 5);
        assert_eq!(r.len(), 2);
        assert_eq!(r.insert(20, 30), 5);
        assert_eq!(r.len(), 1);
        assert_eq!(r.first(), Some((10, 40)));
        assert_eq!(r.total(), 30);
        assert_eq!(r.insert(12, 18), 0);
        assert_eq!(r.insert(0, 50), 20);
        assert_eq!(r.total(), 50);
    }

    #[test]
    fn remove_below_trims() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        r.remove_below(15);
        assert_eq!(r.first(), Some((15, 20)));
        assert_eq!(r.total(), 15);
        r.remove_below(35);
        assert_eq!(r.first(), Some((35, 40)));
        assert_eq!(r.total(), 5);
    }

    #[test]
    fn covered_in_and_lookup() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(r.covered_in(0, 100), 20);
        assert_eq!(r.covered_in(15, 35), 10);
        assert_eq!(r.containing(19), Some((10, 20)));
        assert_eq!(r.containing(20), None);
        assert_eq!(r.next_from(20), Some((30, 40)));
    }
}
