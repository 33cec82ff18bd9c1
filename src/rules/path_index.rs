//! The `paths` selector index: a segment trie walked as an NFA.
//!
//! Every rule's patterns are inserted into one trie keyed by segment. Matching keeps the
//! set of trie nodes reachable after each segment of the request's match key, so the
//! cost is bounded by segments × live nodes — it does not grow with the number of
//! rules, and no pattern can make it exponential (a `**` node simply stays live).

use rustc_hash::FxHashMap as HashMap;

use smallvec::SmallVec;

use super::bits::RuleBits;
use super::pattern::{Glob, PathPattern, SegmentPattern, key_segments};

type NodeId = u32;

#[derive(Debug, Clone, Default)]
struct Node {
    literals: HashMap<Box<str>, NodeId>,
    globs: Vec<(Glob, NodeId)>,
    /// The `**` child: a node that stays live on every segment.
    any_segments: Option<NodeId>,
    /// Whether this node is itself a `**` node.
    loops: bool,
    /// Rules with a pattern that ends here.
    terminal: Option<RuleBits>,
}

/// Path pattern index over all rules.
#[derive(Debug, Clone)]
pub struct PathIndex {
    nodes: Vec<Node>,
    without_selector: RuleBits,
}

impl PathIndex {
    /// Builds the trie from each rule's patterns; `without_selector` are the rules that
    /// match any path.
    pub fn build<'a>(
        rule_count: usize,
        rules: impl IntoIterator<Item = (usize, &'a [PathPattern])>,
        without_selector: &RuleBits,
    ) -> Self {
        let mut index = PathIndex {
            nodes: vec![Node::default()],
            without_selector: without_selector.clone(),
        };
        for (rule, patterns) in rules {
            for pattern in patterns {
                let end = index.insert(pattern.segments());
                index.nodes[end as usize]
                    .terminal
                    .get_or_insert_with(|| RuleBits::empty(rule_count))
                    .insert(rule);
            }
        }
        index
    }

    fn insert(&mut self, segments: &[SegmentPattern]) -> NodeId {
        let mut current: NodeId = 0;
        for segment in segments {
            current = match segment {
                SegmentPattern::Literal(text) => match self.nodes[current as usize].literals.get(text) {
                    Some(&next) => next,
                    None => {
                        let next = self.push(false);
                        self.nodes[current as usize].literals.insert(text.clone(), next);
                        next
                    }
                },
                SegmentPattern::Glob(glob) => {
                    match self.nodes[current as usize]
                        .globs
                        .iter()
                        .find(|(existing, _)| existing == glob)
                    {
                        Some(&(_, next)) => next,
                        None => {
                            let next = self.push(false);
                            self.nodes[current as usize].globs.push((glob.clone(), next));
                            next
                        }
                    }
                }
                SegmentPattern::AnySegments => match self.nodes[current as usize].any_segments {
                    Some(next) => next,
                    None => {
                        let next = self.push(true);
                        self.nodes[current as usize].any_segments = Some(next);
                        next
                    }
                },
            };
        }
        current
    }

    fn push(&mut self, loops: bool) -> NodeId {
        let id = NodeId::try_from(self.nodes.len()).expect("fewer than 2^32 pattern segments");
        self.nodes.push(Node {
            loops,
            ..Node::default()
        });
        id
    }

    /// Adds `node` and, through `**` children (which may match zero segments), every
    /// node reachable without consuming a segment.
    fn activate(&self, node: NodeId, live: &mut SmallVec<[NodeId; 8]>) {
        let mut next = Some(node);
        while let Some(id) = next {
            if live.contains(&id) {
                return;
            }
            live.push(id);
            next = self.nodes[id as usize].any_segments;
        }
    }

    /// The rules whose `paths` selector admits this match key, written into `out`
    /// (which must be sized for the rule set).
    pub fn candidates(&self, key: &str, out: &mut RuleBits) {
        out.clone_from(&self.without_selector);
        // `*` (OPTIONS) has no path for a pattern to match.
        if !key.starts_with('/') {
            return;
        }
        let mut live: SmallVec<[NodeId; 8]> = SmallVec::new();
        self.activate(0, &mut live);
        let mut next: SmallVec<[NodeId; 8]> = SmallVec::new();
        for segment in key_segments(key) {
            next.clear();
            for &id in &live {
                let node = &self.nodes[id as usize];
                if node.loops {
                    self.activate(id, &mut next);
                }
                if let Some(&child) = node.literals.get(segment) {
                    self.activate(child, &mut next);
                }
                for (glob, child) in &node.globs {
                    if glob.matches(segment) {
                        self.activate(*child, &mut next);
                    }
                }
            }
            std::mem::swap(&mut live, &mut next);
            if live.is_empty() {
                return;
            }
        }
        for &id in &live {
            if let Some(terminal) = &self.nodes[id as usize].terminal {
                out.union_with(terminal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::{self, PathOptions};

    fn index(rules: &[&[&str]]) -> PathIndex {
        let options = PathOptions::default();
        let compiled: Vec<Vec<PathPattern>> = rules
            .iter()
            .map(|patterns| {
                patterns
                    .iter()
                    .map(|p| PathPattern::parse(p, &options).unwrap())
                    .collect()
            })
            .collect();
        let without = RuleBits::empty(rules.len());
        PathIndex::build(
            rules.len(),
            compiled.iter().enumerate().map(|(i, p)| (i, p.as_slice())),
            &without,
        )
    }

    fn matching(index: &PathIndex, rule_count: usize, path: &str) -> Vec<usize> {
        let key = path::normalize(path, &PathOptions::default()).unwrap().key;
        let mut out = RuleBits::empty(rule_count);
        index.candidates(&key, &mut out);
        out.iter().collect()
    }

    #[test]
    fn every_rule_whose_pattern_matches_is_a_candidate() {
        let rules: &[&[&str]] = &[
            &["/admin/**"],
            &["/admin/users"],
            &["/api/*/items", "/files/*.pdf"],
            &["/**"],
        ];
        let index = index(rules);
        assert_eq!(matching(&index, 4, "/admin/users"), vec![0, 1, 3]);
        assert_eq!(matching(&index, 4, "/admin"), vec![0, 3]);
        assert_eq!(matching(&index, 4, "/administrator"), vec![3]);
        assert_eq!(matching(&index, 4, "/api/v2/items"), vec![2, 3]);
        assert_eq!(matching(&index, 4, "/files/x.pdf"), vec![2, 3]);
        assert_eq!(matching(&index, 4, "/"), vec![3]);
    }

    #[test]
    fn consecutive_double_stars_do_not_explode() {
        let rules: &[&[&str]] = &[&["/**/**/**/**/x"]];
        let index = index(rules);
        let long = "/a".repeat(2000) + "/x";
        assert_eq!(matching(&index, 1, &long), vec![0]);
        assert_eq!(matching(&index, 1, &"/a".repeat(2000)), Vec::<usize>::new());
    }
}
