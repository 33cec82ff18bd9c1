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
