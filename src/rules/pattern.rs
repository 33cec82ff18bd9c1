//! Path patterns (SPEC §5): literal segments, `*` within one segment, `**` for zero or
//! more whole segments.
//!
//! Patterns are put through the same normalization as request paths, so
//! `/%61dmin/**` and `/admin/**` are one pattern, and are compared segment by segment,
//! so `/admin/**` can never match `/administrator`.

use crate::path::{self, PathOptions};

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentPattern {
    /// Exactly this text.
    Literal(Box<str>),
    /// Text with `*` wildcards, matched within one segment.
    Glob(Glob),
    /// `**`: zero or more whole segments.
    AnySegments,
}

/// A segment pattern with at least one `*`, kept as the literal pieces between them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    pieces: Vec<Box<str>>,
}

impl Glob {
    fn new(text: &str) -> Self {
        Glob {
            pieces: text.split('*').map(Box::from).collect(),
        }
    }

    /// Whether this is a bare `*`.
    pub fn is_star(&self) -> bool {
        self.pieces.iter().all(|piece| piece.is_empty())
    }

    /// Whether the fixed prefixes and suffixes of two globs are compatible.
    fn may_meet(&self, other: &Glob) -> bool {
        let compatible_prefix = |a: &str, b: &str| a.starts_with(b) || b.starts_with(a);
        let compatible_suffix = |a: &str, b: &str| a.ends_with(b) || b.ends_with(a);
        let (Some(a_first), Some(b_first)) = (self.pieces.first(), other.pieces.first()) else {
            return true;
        };
        let (Some(a_last), Some(b_last)) = (self.pieces.last(), other.pieces.last()) else {
            return true;
        };
        compatible_prefix(a_first, b_first) && compatible_suffix(a_last, b_last)
    }

    /// Whether the segment matches: the first piece is a prefix, the last a suffix, and
    /// the ones between appear in order without overlapping. `*` matches any text,
    /// including none.
    pub fn matches(&self, segment: &str) -> bool {
        let (first, rest) = self.pieces.split_first().expect("a glob has at least two pieces");
        let (last, middle) = rest.split_last().expect("a glob has at least two pieces");
        if segment.len() < first.len() + last.len() || !segment.starts_with(&**first) || !segment.ends_with(&**last) {
            return false;
        }
        let mut remaining = &segment[first.len()..segment.len() - last.len()];
        for piece in middle {
            match remaining.find(&**piece) {
                Some(at) => remaining = &remaining[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    written: String,
    segments: Vec<SegmentPattern>,
}

impl PathPattern {
    /// Parses and canonicalizes a pattern as written in a rule.
    ///
    /// Dot segments and `;` are refused rather than normalized away: a pattern that
    /// only looks like it protects `/a/../admin` is a mistake the operator should see.
    pub fn parse(written: &str, options: &PathOptions) -> Result<Self, String> {
        if !written.starts_with('/') {
            return Err(format!("path pattern `{written}` must start with `/`"));
        }
        if written.contains(';') {
            return Err(format!(
                "path pattern `{written}` contains `;`; request paths are matched with their `;parameters` removed, so it could never match"
            ));
        }
        if written.split('/').any(|segment| segment == "." || segment == "..") {
            return Err(format!("path pattern `{written}` contains a `.` or `..` segment"));
        }
        let normalized =
            path::normalize(written, options).map_err(|error| format!("path pattern `{written}`: {error}"))?;
        let key = normalized.key;
        let mut segments = Vec::new();
        for segment in key[1..].split('/') {
            let compiled = if segment == "**" {
                SegmentPattern::AnySegments
            } else if segment.contains("**") {
                return Err(format!(
                    "path pattern `{written}`: `**` must stand alone as a whole segment (like `/admin/**`); use `*` within a segment"
                ));
            } else if segment.contains('*') {
                SegmentPattern::Glob(Glob::new(segment))
            } else {
                SegmentPattern::Literal(segment.into())
            };
            segments.push(compiled);
        }
        Ok(PathPattern {
            written: written.to_string(),
            segments,
        })
    }

    /// The pattern as the operator wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The compiled segments, for the index.
    pub fn segments(&self) -> &[SegmentPattern] {
        &self.segments
    }

    /// Whether the pattern has any wildcard (used by the linter's bare-path warning).
    pub fn has_wildcard(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| !matches!(segment, SegmentPattern::Literal(_)))
    }

    /// Reference matcher: whether a match key (from `path::normalize`) matches. The
    /// index must always agree with this; property tests check it.
    pub fn matches(&self, key: &str) -> bool {
        if !key.starts_with('/') {
            return false;
        }
        let segments: Vec<&str> = key_segments(key).collect();
        matches_from(&self.segments, &segments)
    }
}

impl PathPattern {
    /// Whether every path this pattern matches, `wider` matches too. Sound but not
    /// complete: `true` is always right (the linter relies on that to report no false
    /// shadowing), `false` may occasionally miss an inclusion.
    pub fn is_covered_by(&self, wider: &PathPattern) -> bool {
        covers(&wider.segments, &self.segments)
    }

    /// Whether some path matches both patterns.
    pub fn overlaps(&self, other: &PathPattern) -> bool {
        let mut memo = vec![None; (self.segments.len() + 1) * (other.segments.len() + 1)];
        intersects(&self.segments, &other.segments, 0, 0, &mut memo)
    }
}

/// Whether `wide` matches every path `narrow` matches (see `is_covered_by`).
fn covers(wide: &[SegmentPattern], narrow: &[SegmentPattern]) -> bool {
    match (wide.split_first(), narrow.split_first()) {
        (None, _) => narrow.is_empty(),
        (Some((SegmentPattern::AnySegments, rest)), _) => {
            rest.is_empty()
                || covers(rest, narrow)
                || narrow
                    .split_first()
                    .is_some_and(|(_, narrow_rest)| covers(wide, narrow_rest))
        }
        (Some(_), None) => false,
        (Some(_), Some((SegmentPattern::AnySegments, _))) => false,
        (Some((wide_segment, wide_rest)), Some((narrow_segment, narrow_rest))) => {
            segment_covers(wide_segment, narrow_segment) && covers(wide_rest, narrow_rest)
        }
    }
}

fn segment_covers(wide: &SegmentPattern, narrow: &SegmentPattern) -> bool {
    match (wide, narrow) {
        (SegmentPattern::Literal(a), SegmentPattern::Literal(b)) => a == b,
        (SegmentPattern::Glob(glob), SegmentPattern::Literal(literal)) => glob.matches(literal),
        (SegmentPattern::Glob(a), SegmentPattern::Glob(b)) => a == b || a.is_star(),
        _ => false,
    }
}

/// Whether `a[i..]` and `b[j..]` match a common path, by dynamic programming over the
/// two patterns' positions (`**` may consume any number of the other's segments).
fn intersects(a: &[SegmentPattern], b: &[SegmentPattern], i: usize, j: usize, memo: &mut [Option<bool>]) -> bool {
    let index = i * (b.len() + 1) + j;
    if let Some(known) = memo[index] {
        return known;
    }
    let result = match (a.get(i), b.get(j)) {
        (None, None) => true,
        (Some(SegmentPattern::AnySegments), _) => {
            intersects(a, b, i + 1, j, memo) || (j < b.len() && intersects(a, b, i, j + 1, memo))
        }
        (_, Some(SegmentPattern::AnySegments)) => {
            intersects(a, b, i, j + 1, memo) || (i < a.len() && intersects(a, b, i + 1, j, memo))
        }
        (None, Some(_)) | (Some(_), None) => false,
        (Some(x), Some(y)) => segments_may_meet(x, y) && intersects(a, b, i + 1, j + 1, memo),
    };
    memo[index] = Some(result);
    result
}

/// Whether two one-segment patterns may match the same text. Exact for literals; for
/// two globs it checks that their fixed prefixes and suffixes agree, which is what
/// decides it for the globs people write (`*.pdf`, `v*`, `*`).
fn segments_may_meet(a: &SegmentPattern, b: &SegmentPattern) -> bool {
    match (a, b) {
        (SegmentPattern::Literal(x), SegmentPattern::Literal(y)) => x == y,
        (SegmentPattern::Glob(glob), SegmentPattern::Literal(text))
        | (SegmentPattern::Literal(text), SegmentPattern::Glob(glob)) => glob.matches(text),
        (SegmentPattern::Glob(x), SegmentPattern::Glob(y)) => x.may_meet(y),
        _ => true,
    }
}

/// The segments of a match key: `/` is one empty segment, `/a/` is `a` and an empty one.
pub fn key_segments(key: &str) -> impl Iterator<Item = &str> {
    key.strip_prefix('/').unwrap_or(key).split('/')
}

fn matches_from(pattern: &[SegmentPattern], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((SegmentPattern::AnySegments, rest)) => (0..=path.len()).any(|skip| matches_from(rest, &path[skip..])),
        Some((SegmentPattern::Literal(literal), rest)) => {
            path.first().is_some_and(|segment| **literal == **segment) && matches_from(rest, &path[1..])
        }
        Some((SegmentPattern::Glob(glob), rest)) => {
            path.first().is_some_and(|segment| glob.matches(segment)) && matches_from(rest, &path[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        PathPattern::parse(text, &PathOptions::default()).unwrap()
    }

    fn key(path: &str) -> String {
        path::normalize(path, &PathOptions::default()).unwrap().key
    }

    /// The table of SPEC §5, row by row.
    #[test]
    fn spec_table_exact_segment() {
        let p = pattern("/admin");
        assert!(p.matches(&key("/admin")));
        for miss in ["/admin/", "/admin/x", "/administrator"] {
            assert!(!p.matches(&key(miss)), "{miss}");
        }
    }

    #[test]
    fn spec_table_trailing_slash() {
        let p = pattern("/admin/");
        assert!(p.matches(&key("/admin/")));
        assert!(!p.matches(&key("/admin")));
    }

    #[test]
    fn spec_table_double_star() {
        let p = pattern("/admin/**");
        for hit in ["/admin", "/admin/", "/admin/x/y"] {
            assert!(p.matches(&key(hit)), "{hit}");
        }
        assert!(!p.matches(&key("/administrator")));
    }

    #[test]
    fn spec_table_single_star_segment() {
        let p = pattern("/api/*/items");
        assert!(p.matches(&key("/api/v1/items")));
        assert!(!p.matches(&key("/api/items")));
        assert!(!p.matches(&key("/api/v1/v2/items")));
    }

    #[test]
    fn spec_table_star_within_segment() {
        let p = pattern("/files/*.pdf");
        assert!(p.matches(&key("/files/a.pdf")));
        assert!(!p.matches(&key("/files/a/b.pdf")));
        assert!(!p.matches(&key("/files/a.pdf.exe")));
    }

    #[test]
    fn double_star_in_the_middle_spans_any_depth() {
        let p = pattern("/**/secret");
        assert!(p.matches(&key("/secret")));
        assert!(p.matches(&key("/a/b/secret")));
        assert!(!p.matches(&key("/a/secretive")));
    }

    #[test]
    fn root_pattern_matches_only_root() {
        let p = pattern("/");
        assert!(p.matches(&key("/")));
        assert!(!p.matches(&key("/x")));
    }

    #[test]
    fn patterns_are_canonicalized_like_paths() {
        assert_eq!(
            pattern("/%61dmin/**"),
            PathPattern {
                written: "/%61dmin/**".into(),
                ..pattern("/admin/**")
            }
        );
        assert!(pattern("//admin//**").matches(&key("/admin/x")));
    }

    #[test]
    fn glob_pieces_must_not_overlap() {
        let p = pattern("/x/ab*ba");
        assert!(!p.matches(&key("/x/aba")));
        assert!(p.matches(&key("/x/abba")));
    }

    #[test]
    fn bad_patterns_are_refused_with_reasons() {
        let options = PathOptions::default();
        for (bad, reason) in [
            ("admin/**", "must start with `/`"),
            ("/a/../admin", "`.` or `..` segment"),
            ("/admin;x", "contains `;`"),
            ("/admin**", "whole segment"),
            ("/a/**x/b", "whole segment"),
            ("/%zz", "path pattern `/%zz`"),
        ] {
            let error = PathPattern::parse(bad, &options).unwrap_err();
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn coverage_is_by_whole_segments() {
        let covered = |narrow: &str, wide: &str| pattern(narrow).is_covered_by(&pattern(wide));
        assert!(covered("/admin/users", "/admin/**"));
        assert!(covered("/admin", "/admin/**"));
        assert!(covered("/admin/**", "/admin/**"));
        assert!(covered("/admin/x/**", "/admin/**"));
        assert!(covered("/anything/at/all", "/**"));
        assert!(covered("/files/a.pdf", "/files/*.pdf"));
        assert!(covered("/api/v1/items", "/api/*/items"));
        assert!(covered("/a/b/secret", "/**/secret"));
        assert!(!covered("/admin/**", "/admin"));
        assert!(!covered("/administrator", "/admin/**"));
        assert!(!covered("/admin/**", "/admin/*"));
        assert!(!covered("/files/*.pdf", "/files/a.pdf"));
        assert!(!covered("/api/**", "/api/*/items"));
    }

    #[test]
    fn overlap_is_some_common_path() {
        let overlap = |a: &str, b: &str| pattern(a).overlaps(&pattern(b));
        assert!(overlap("/admin/**", "/admin/users"));
        assert!(overlap("/**", "/x"));
        assert!(overlap("/api/*/items", "/api/v1/**"));
        assert!(overlap("/**/secret", "/admin/**"));
        assert!(overlap("/files/*.pdf", "/files/report*"));
        assert!(!overlap("/admin/**", "/public/**"));
        assert!(!overlap("/admin", "/admin/"));
        assert!(!overlap("/files/*.pdf", "/files/*.doc"));
        assert!(!overlap("/api/*/items", "/api/v1/orders"));
    }

    #[test]
    fn case_insensitive_patterns_are_lowercased() {
        let options = PathOptions {
            case_insensitive: true,
            ..PathOptions::default()
        };
        let p = PathPattern::parse("/Admin/**", &options).unwrap();
        let request = path::normalize("/ADMIN./x", &options).unwrap();
        assert!(p.matches(&request.key));
    }
}
