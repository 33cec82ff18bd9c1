//! Sets of rule ids as bit sets.
//!
//! Every selector index answers "which rules could match on this selector" with one of
//! these; the engine intersects them and takes the lowest set bit, which is the first
//! matching rule in file order. Sets with up to 256 rules live on the stack.

use smallvec::SmallVec;

/// A set of rule ids (`0..len`), in file order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleBits {
    words: SmallVec<[u64; 4]>,
}

impl RuleBits {
    /// The empty set for a rule set of `rule_count` rules.
    pub fn empty(rule_count: usize) -> Self {
        RuleBits {
            words: SmallVec::from_elem(0, rule_count.div_ceil(64).max(1)),
        }
    }

    /// Adds one rule.
    pub fn insert(&mut self, rule: usize) {
        self.words[rule / 64] |= 1 << (rule % 64);
    }

    /// Removes one rule.
    pub fn remove(&mut self, rule: usize) {
        self.words[rule / 64] &= !(1 << (rule % 64));
    }

    /// Whether the rule is in the set.
    pub fn contains(&self, rule: usize) -> bool {
        self.words
            .get(rule / 64)
            .is_some_and(|word| word & (1 << (rule % 64)) != 0)
    }

    /// Adds every rule of `other`.
    pub fn union_with(&mut self, other: &RuleBits) {
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// Keeps only the rules that are also in `other`.
    pub fn intersect_with(&mut self, other: &RuleBits) {
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine &= theirs;
        }
    }

    /// The rules in ascending order (file order).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(index, &word)| {
            let mut remaining = word;
            std::iter::from_fn(move || {
                if remaining == 0 {
                    return None;
                }
                let bit = remaining.trailing_zeros() as usize;
                remaining &= remaining - 1;
                Some(index * 64 + bit)
            })
        })
    }

    /// Whether no rule is in the set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&word| word == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_is_in_file_order_across_words() {
        let mut bits = RuleBits::empty(200);
        for rule in [130, 3, 64, 0, 199] {
            bits.insert(rule);
        }
        assert_eq!(bits.iter().collect::<Vec<_>>(), vec![0, 3, 64, 130, 199]);
    }

    #[test]
    fn intersection_keeps_only_common_rules() {
        let mut a = RuleBits::empty(70);
        let mut b = RuleBits::empty(70);
        a.insert(1);
        a.insert(69);
        b.insert(69);
        b.insert(2);
        a.intersect_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![69]);
        a.remove(69);
        assert!(a.is_empty());
    }
}
