//! A set of disjoint half-open `u64` ranges kept sorted in a ring (`VecDeque`): O(log n)
//! lookup, inserts and removals that shift the few ranges after them, and no allocation once
//! the ring has room (an emptied set keeps it, so a receiver whose out-of-order set empties
//! and refills at every hole allocates nothing).
//!
//! Used for the receiver's out-of-order map and for the sender's SACK scoreboard. Offsets are
//! 64-bit stream positions, so sequence-number wrap-around never reaches this structure.

use std::collections::VecDeque;

/// Disjoint, non-adjacent half-open ranges `[start, end)`, with their total size.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    /// Sorted by start; as the ranges are disjoint and not adjacent, by end as well.
    ranges: VecDeque<(u64, u64)>,
    total: u64,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when no range is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The number of ranges starting at or below `x`.
    fn starting_to(&self, x: u64) -> usize {
        self.ranges.partition_point(|&(a, _)| a <= x)
    }

    /// The number of ranges ending below `x` (wholly before it, not touching it).
    fn ending_before(&self, x: u64) -> usize {
        self.ranges.partition_point(|&(_, b)| b < x)
    }

    /// The number of ranges ending at or below `x` (none of their bytes at `x` or above).
    fn ending_to(&self, x: u64) -> usize {
        self.ranges.partition_point(|&(_, b)| b <= x)
    }

    /// Inserts `[start, end)`, merging with overlapping or adjacent ranges. Returns the number
    /// of bytes that were not covered before.
    pub fn insert(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let below = self.starting_to(start);
        if below > 0 && self.ranges[below - 1].1 >= end {
            return 0;
        }
        // The common case: the highest range grows at its end (data arriving in order
        // beyond a hole): changed in place.
        if below == self.ranges.len() {
            if let Some(last) = self.ranges.back_mut() {
                if start <= last.1 {
                    let added = end - last.1;
                    last.1 = end;
                    self.total += added;
                    return added;
                }
            }
        }
        // The ranges that overlap or touch `[start, end]` become one.
        let first = self.ending_before(start);
        let past = self.starting_to(end);
        if first >= past {
            self.ranges.insert(first, (start, end));
            self.total += end - start;
            return end - start;
        }
        let s = start.min(self.ranges[first].0);
        let e = end.max(self.ranges[past - 1].1);
        let removed: u64 = self.ranges.range(first..past).map(|&(a, b)| b - a).sum();
        self.ranges[first] = (s, e);
        self.ranges.drain(first + 1..past);
        let added = (e - s) - removed;
        self.total += added;
        added
    }

    /// Removes everything below `at`.
    pub fn remove_below(&mut self, at: u64) {
        while let Some(front) = self.ranges.front_mut() {
            let (a, b) = *front;
            if a >= at {
                break;
            }
            if b > at {
                front.0 = at;
                self.total -= at - a;
                break;
            }
            self.ranges.pop_front();
            self.total -= b - a;
        }
    }

    /// Removes `[start, end)`, splitting ranges that straddle its edges. Returns the number
    /// of bytes that were covered.
    pub fn remove(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        // The ranges that overlap `[start, end)`: they end after `start`, begin before `end`.
        let first = self.ending_to(start);
        let past = self.ranges.partition_point(|&(a, _)| a < end);
        if first >= past {
            return 0;
        }
        let removed: u64 = self
            .ranges
            .range(first..past)
            .map(|&(a, b)| b.min(end) - a.max(start))
            .sum();
        let (lo, _) = self.ranges[first];
        let (_, hi) = self.ranges[past - 1];
        self.ranges.drain(first..past);
        if hi > end {
            self.ranges.insert(first, (end, hi));
        }
        if lo < start {
            self.ranges.insert(first, (lo, start));
        }
        self.total -= removed;
        removed
    }

    /// The range containing `x`, if any.
    pub fn containing(&self, x: u64) -> Option<(u64, u64)> {
        let below = self.starting_to(x);
        match below.checked_sub(1).map(|i| self.ranges[i]) {
            Some((a, b)) if b > x => Some((a, b)),
            _ => None,
        }
    }

    /// True when `[start, end)` overlaps or is adjacent to a held range (inserting it would
    /// not add a range).
    pub fn touches(&self, start: u64, end: u64) -> bool {
        let i = self.ending_before(start);
        matches!(self.ranges.get(i), Some(&(a, _)) if a <= end)
    }

    /// The pieces of `[from, to)` no held range covers, lowest first.
    pub fn gaps(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut p = from;
        while let Some((a, b)) = self.next_gap(p, to) {
            out.push((a, b));
            p = b;
        }
        out
    }

    /// The lowest piece of `[from, to)` no held range covers, if any (for a caller that
    /// fills each gap as it finds it: nothing allocated).
    pub fn next_gap(&self, from: u64, to: u64) -> Option<(u64, u64)> {
        // Ranges are not adjacent: past the end of the one holding `from` is a gap.
        let p = self.containing(from).map_or(from, |(_, end)| end);
        if p >= to {
            return None;
        }
        let q = self.next_from(p).map_or(to, |(start, _)| start.min(to));
        Some((p, q))
    }

    /// The first range starting at or after `x`.
    pub fn next_from(&self, x: u64) -> Option<(u64, u64)> {
        let i = self.ranges.partition_point(|&(a, _)| a < x);
        self.ranges.get(i).copied()
    }

    /// The lowest range.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.ranges.front().copied()
    }

    /// The highest range.
    pub fn last(&self) -> Option<(u64, u64)> {
        self.ranges.back().copied()
    }

    /// Removes and returns the lowest range.
    pub fn pop_first(&mut self) -> Option<(u64, u64)> {
        let (a, b) = self.ranges.pop_front()?;
        self.total -= b - a;
        Some((a, b))
    }

    /// Ranges from the highest down.
    pub fn iter_rev(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().rev().copied()
    }

    /// Ranges from the lowest up.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    /// Bytes covered inside `[from, to)`.
    pub fn covered_in(&self, from: u64, to: u64) -> u64 {
        if from >= to {
            return 0;
        }
        let first = self.ending_to(from);
        self.ranges
            .range(first..)
            .take_while(|&&(a, _)| a < to)
            .map(|&(a, b)| b.min(to) - a.max(from))
            .sum()
    }

    /// Removes every range (the ring keeps its room).
    pub fn clear(&mut self) {
        self.ranges.clear();
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

    /// The set as runs of a bitmap over `0..U`: the model the proptest checks against.
    fn runs(bits: &[bool]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bits.len() {
            if bits[i] {
                let s = i;
                while i < bits.len() && bits[i] {
                    i += 1;
                }
                out.push((s as u64, i as u64));
            } else {
                i += 1;
            }
        }
        out
    }

    const U: usize = 96;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Remove(u64, u64),
        RemoveBelow(u64),
        PopFirst,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let r = (0..U as u64, 0..U as u64);
        prop_oneof![
            4 => r.clone().prop_map(|(a, b)| Op::Insert(a.min(b), a.max(b))),
            2 => r.prop_map(|(a, b)| Op::Remove(a.min(b), a.max(b))),
            1 => (0..U as u64).prop_map(Op::RemoveBelow),
            1 => Just(Op::PopFirst),
        ]
    }

    proptest::proptest! {
        #[test]
        fn behaves_as_a_bitmap(ops in proptest::collection::vec(op(), 1..60)) {
            let mut set = RangeSet::new();
            let mut bits = vec![false; U];
            for op in ops {
                match op {
                    Op::Insert(a, b) => {
                        let new = (a..b).filter(|&x| !bits[x as usize]).count() as u64;
                        (a..b).for_each(|x| bits[x as usize] = true);
                        proptest::prop_assert_eq!(set.insert(a, b), new);
                    }
                    Op::Remove(a, b) => {
                        let had = (a..b).filter(|&x| bits[x as usize]).count() as u64;
                        (a..b).for_each(|x| bits[x as usize] = false);
                        proptest::prop_assert_eq!(set.remove(a, b), had);
                    }
                    Op::RemoveBelow(a) => {
                        (0..a).for_each(|x| bits[x as usize] = false);
                        set.remove_below(a);
                    }
                    Op::PopFirst => {
                        let first = runs(&bits).first().copied();
                        if let Some((a, b)) = first {
                            (a..b).for_each(|x| bits[x as usize] = false);
                        }
                        proptest::prop_assert_eq!(set.pop_first(), first);
                    }
                }
                let model = runs(&bits);
                proptest::prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.clone());
                proptest::prop_assert_eq!(set.len(), model.len());
                proptest::prop_assert_eq!(set.total(), bits.iter().filter(|&&b| b).count() as u64);
            }
            let model = runs(&bits);
            for q in 0..U as u64 {
                let containing = model.iter().copied().find(|&(a, b)| a <= q && q < b);
                proptest::prop_assert_eq!(set.containing(q), containing);
                proptest::prop_assert_eq!(set.next_from(q), model.iter().copied().find(|&(a, _)| a >= q));
            }
            for lo in 0..U as u64 {
                for hi in lo..=U as u64 {
                    let covered = (lo..hi).filter(|&x| bits[x as usize]).count() as u64;
                    proptest::prop_assert_eq!(set.covered_in(lo, hi), covered);
                    let gaps: Vec<bool> = (0..U).map(|x| (lo..hi).contains(&(x as u64)) && !bits[x]).collect();
                    proptest::prop_assert_eq!(set.gaps(lo, hi), runs(&gaps));
                    if lo < hi {
                        let touches = model.iter().any(|&(a, b)| a <= hi && b >= lo);
                        proptest::prop_assert_eq!(set.touches(lo, hi), touches);
                    }
                }
            }
            proptest::prop_assert_eq!(set.first(), model.first().copied());
            proptest::prop_assert_eq!(set.last(), model.last().copied());
        }
    }
}
