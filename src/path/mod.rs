//! Request-path normalization: the one place where portcullis decides what a
//! request path means.
//!
//! This module owns turning the path of a request target into two strings:
//! the *forwarded path*, which is what the upstream receives, and the *match
//! key*, which is what access rules are matched against. It is security
//! critical because every access rule is only as good as the agreement between
//! the key the proxy checks and the path the backend finally serves. Backends
//! read paths in many ways: some decode escapes twice, some treat `\` as `/`,
//! Tomcat drops `;parameters` (so `/..;/` climbs), some merge slashes, Windows
//! drops trailing dots and spaces. A path that any common reading could turn
//! into a protected path other than the one the key names is rejected, never
//! guessed at; everything else is forwarded in a canonical form that no later
//! hop can reinterpret.
//!
//! Both functions are pure. A path that is already canonical is recognised in
//! one scan and returned as-is; every other path is processed in time linear
//! in its length.

use std::str;

/// How `%2F`, `%5C` and `%3B` in a path are treated.
///
/// These three escapes are where proxies and backends disagree most: some
/// backends decode them before routing (so `%2F` becomes a segment boundary and
/// `%3B` starts parameters), others never do. Rejecting them is the safe
/// default; keeping them serves upstreams that need encoded slashes (object
/// keys, for example), and the match key then treats them as the separators a
/// backend might turn them into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Refuse any path containing `%2F`, `%5C` or `%3B` (in any hex case).
    Reject,
    /// Forward them as upper-case escapes; the match key reads them as `/`,
    /// `/` and `;`.
    Keep,
}

/// Per-route choices that change how a path is normalized.
///
/// They exist because backends differ; pick the ones that match what the
/// upstream does, so the proxy's reading and the backend's reading agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// What to do with escaped separators; see [`EscapedSlashes`].
    pub escaped_slashes: EscapedSlashes,
    /// Collapse runs of `/` in the forwarded path, before dot removal, as
    /// nginx, Tomcat and Go's `path.Clean` do, so that `/a//../b` means `/b`
    /// to the proxy and to such a backend alike.
    pub merge_slashes: bool,
    /// Match rules case-insensitively and ignore the trailing dots and spaces
    /// a Windows backend drops, so `/ADMIN./` cannot slip past a rule for
    /// `/admin/`. The forwarded path keeps its case.
    pub case_insensitive: bool,
}

impl Default for PathOptions {
    /// The strictest setting that still suits ordinary backends: escaped
    /// separators rejected, slashes merged, case kept.
    fn default() -> Self {
        Self {
            escaped_slashes: EscapedSlashes::Reject,
            merge_slashes: true,
            case_insensitive: false,
        }
    }
}

/// A path accepted by [`normalize`]: what to forward and what to check.
///
/// The two are kept apart because the upstream needs a faithful path while
/// the rules need a reading that every backend interpretation collapses onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    /// The canonical path sent upstream. Normalizing it again with the same
    /// options yields it unchanged, so no later hop can reinterpret it.
    pub forwarded: String,
    /// The form access rules are matched against; always equal to
    /// `match_key(&forwarded, opts)`. It is never sent anywhere.
    pub key: String,
}

/// Why a path was refused.
///
/// Each variant is one reason, so callers can log and count them; the
/// messages are fixed text that never echo the path, so they are safe to send
/// back to an HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`: only origin-form targets are routed.
    #[error("the path does not start with '/'")]
    NotOriginForm,
    /// A raw or escaped control byte (0x00–0x1F, 0x7F): these split headers
    /// and log lines and end strings in C backends.
    #[error("the path contains a control character")]
    ControlCharacter,
    /// A `%` not followed by two hex digits: backends disagree on what it is.
    #[error("the path contains a malformed percent-escape")]
    MalformedEscape,
    /// The bytes are not UTF-8 once decoded; this includes overlong forms and
    /// surrogates, which lenient decoders turn into `.` or `/`.
    #[error("the path is not valid UTF-8")]
    InvalidUtf8,
    /// A raw `\`, which Windows and some frameworks read as `/`.
    #[error("the path contains a backslash")]
    Backslash,
    /// An escape that is still an escape after one decoding (`%252e`): a
    /// backend that decodes twice would see a different path.
    #[error("the path contains a double-encoded character")]
    DoubleEncoded,
    /// `%2F`, `%5C` or `%3B` under [`EscapedSlashes::Reject`]: a backend that
    /// decodes them sees different segments.
    #[error("the path contains an encoded '/', '\\' or ';'")]
    EscapedSeparator,
    /// A `.` or `..` segment carrying `;parameters` (`/..;/admin`): Tomcat
    /// and others strip the parameters and then climb.
    #[error("the path contains a '.' or '..' segment with parameters")]
    DotSegmentWithParameters,
    /// A kept `%2F` or `%5C` inside `;parameters` (`/;%5C%23%2Fadmin`): the key
    /// ends the parameters there, but a backend that decodes and then strips
    /// parameters, or never splits on `\`, reads a different path.
    #[error("the path contains an encoded '/' or '\\' inside ';parameters'")]
    EscapedSeparatorInParameters,
    /// A dot segment that only some readings see (`/a%2F..%2Fb`, or `...`
    /// and `.. ` on a case-insensitive route): rejected rather than guessed.
    #[error("the path contains an ambiguous dot segment")]
    AmbiguousDotSegment,
}

/// Normalizes the path of a request target (no query, no fragment).
///
/// Returns the canonical path to forward and the key to match rules against,
/// or the reason the path is ambiguous. This is the only entry point the proxy
/// should use on a client-supplied path: matching rules against anything else
/// reopens the gap between what is checked and what is served.
pub fn normalize(path: &str, opts: &PathOptions) -> Result<NormalizedPath, PathError> {
    if is_canonical(path, opts) {
        return Ok(NormalizedPath {
            forwarded: path.to_owned(),
            key: path.to_owned(),
        });
    }
    normalize_slow(path, opts)
}

/// Computes the match key of a forwarded path.
///
/// Public so that rule paths written by operators can be keyed the same way
/// as requests. The key reads `%2F`/`%5C` as `/` and `%3B` as `;`, decodes the
/// escapes a backend treats as their characters, drops `;parameters`, merges
/// slashes and, on case-insensitive routes, lower-cases and drops trailing
/// dots and spaces. Dot segments it would have to resolve are errors. Meant for
/// forwarded paths, it is still a pure function of any input, and a key is
/// its own key.
pub fn match_key(forwarded: &str, opts: &PathOptions) -> Result<String, PathError> {
    if is_canonical(forwarded, opts) {
        return Ok(forwarded.to_owned());
    }
    match_key_slow(forwarded, opts.case_insensitive)
}

/// The full normalization, for paths the fast path did not accept.
fn normalize_slow(path: &str, opts: &PathOptions) -> Result<NormalizedPath, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotOriginForm)?;
    // Characters first: dot segments are only recognisable once `%2e` has
    // been decoded, and the decoded-stream checks need every escape.
    let text = canonicalize_characters(rest, opts.escaped_slashes)?;
    // Segments second, on the canonical text, where a raw `/` is the only
    // separator (a kept `%2F` is still an escape there).
    let forwarded = resolve_segments(&text, opts.merge_slashes)?;
    // The key comes from the forwarded path, never from the raw input, so the
    // rules judge exactly what the upstream receives.
    let key = match_key(&forwarded, opts)?;
    Ok(NormalizedPath { forwarded, key })
}

/// The full key computation, for paths the fast path did not accept.
fn match_key_slow(path: &str, case_insensitive: bool) -> Result<String, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotOriginForm)?;
    let mut key = KeyBuilder::new(path.len(), case_insensitive);
    let mut in_parameters = false;
    for unit in Units::new(rest) {
        let unit = unit?;
        if in_parameters && matches!(unit, Unit::Escaped(b'/' | b'\\')) {
            return Err(PathError::EscapedSeparatorInParameters);
        }
        match key_piece(unit) {
            KeyPiece::Separator => {
                in_parameters = false;
                key.end_segment()?
            }
            KeyPiece::Parameters => {
                in_parameters = true;
                key.start_parameters()
            }
            KeyPiece::Text(piece) => key.push(piece),
        }
    }
    key.finish()
}

/// The fast path: true when `path` is its own forwarded path and its own key.
///
/// That holds when it starts with `/`, contains only unreserved characters
/// and single `/`, has no `.` or `..` segment and, on case-insensitive routes,
/// no upper case and no segment ending in `.`.
fn is_canonical(path: &str, opts: &PathOptions) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        if !is_canonical_segment(segment.as_bytes(), is_last, opts.case_insensitive) {
            return false;
        }
    }
    true
}

/// One segment of the fast path; only the last one may be empty (a trailing
/// slash, which both the forwarded path and the key keep).
fn is_canonical_segment(segment: &[u8], is_last: bool, case_insensitive: bool) -> bool {
    if segment.is_empty() {
        return is_last;
    }
    if segment == b"." || segment == b".." {
        return false;
    }
    if case_insensitive && segment.ends_with(b".") {
        return false;
    }
    segment
        .iter()
        .all(|&byte| is_unreserved(byte) && !(case_insensitive && byte.is_ascii_uppercase()))
}

/// Steps 2 to 5: validates every byte and escape of `rest` (the path after its
/// leading `/`) and rewrites it with canonical characters: unreserved escapes
/// decoded, other escapes upper-cased, raw characters outside the path grammar
/// escaped. Raw `/` stays the only separator.
fn canonicalize_characters(rest: &str, escaped_slashes: EscapedSlashes) -> Result<String, PathError> {
    let mut text = String::with_capacity(rest.len());
    let mut decoded = Vec::with_capacity(rest.len());
    for unit in Units::new(rest) {
        let unit = unit?;
        decoded.push(unit.byte());
        match canonical_piece(unit, escaped_slashes)? {
            Piece::Literal(byte) => text.push(char::from(byte)),
            Piece::Escape(byte) => push_escape(&mut text, byte, HexCase::Upper),
        }
    }
    // Only now has every escape been decoded exactly once, which is what both
    // of these checks are defined on.
    if str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    if contains_escape(&decoded) {
        return Err(PathError::DoubleEncoded);
    }
    Ok(text)
}

/// Steps 6 to 8: rejects dot segments with parameters, merges slashes if
/// asked, removes dot segments (RFC 3986 5.2.4) and returns the forwarded
/// path. `text` is the canonical text after the leading `/`.
fn resolve_segments(text: &str, merge_slashes: bool) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = text.split('/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        // Checked before anything can drop the segment: `/.;x/../a` is refused
        // even though its `..` would remove the offending segment.
        reject_dot_segment_parameters(segment)?;
        // Merging comes before dot removal (as in nginx, Tomcat and Go's
        // path.Clean): in `/a//../b` the `..` removes `a`, not the empty
        // segment. A final empty segment is a trailing slash and stays.
        if merge_slashes && segment.is_empty() && !is_last {
            continue;
        }
        if is_dot_segment(segment) {
            if segment == ".." {
                kept.pop();
            }
            // A final dot segment leaves a trailing slash: `/a/b/..` -> `/a/`.
            if is_last {
                kept.push("");
            }
        } else {
            kept.push(segment);
        }
    }
    let mut forwarded = String::with_capacity(text.len() + 1);
    for segment in &kept {
        forwarded.push('/');
        forwarded.push_str(segment);
    }
    if forwarded.is_empty() {
        forwarded.push('/');
    }
    Ok(forwarded)
}

/// Step 6: a segment whose text before its first raw `;` is `.` or `..`.
fn reject_dot_segment_parameters(segment: &str) -> Result<(), PathError> {
    match segment.split_once(';') {
        Some((name, _)) if is_dot_segment(name) => Err(PathError::DotSegmentWithParameters),
        _ => Ok(()),
    }
}

fn is_dot_segment(segment: &str) -> bool {
    matches!(segment, "." | "..")
}

/// True if `decoded` still holds a `%` followed by two hex digits.
fn contains_escape(decoded: &[u8]) -> bool {
    decoded
        .windows(3)
        .any(|window| matches!(window, [b'%', high, low] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit()))
}

/// One lexical unit of a path: a raw byte or a decoded `%XX` escape.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Raw(u8),
    Escaped(u8),
}

impl Unit {
    fn byte(self) -> u8 {
        match self {
            Unit::Raw(byte) | Unit::Escaped(byte) => byte,
        }
    }
}

/// Splits a path into [`Unit`]s, refusing what no reading of a path may hold
/// (malformed escapes, control bytes, raw backslashes). Stops after the first
/// error.
struct Units<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Units<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            position: 0,
        }
    }
}

impl Iterator for Units<'_> {
    type Item = Result<Unit, PathError>;

    fn next(&mut self) -> Option<Self::Item> {
        let &first = self.bytes.get(self.position)?;
        let unit = if first == b'%' {
            let escape = self
                .bytes
                .get(self.position + 1..self.position + 3)
                .and_then(decode_hex_pair);
            self.position += 3;
            escape.map(Unit::Escaped).ok_or(PathError::MalformedEscape)
        } else {
            self.position += 1;
            Ok(Unit::Raw(first))
        };
        let checked = unit.and_then(reject_forbidden_unit);
        if checked.is_err() {
            self.position = self.bytes.len();
        }
        Some(checked)
    }
}

fn reject_forbidden_unit(unit: Unit) -> Result<Unit, PathError> {
    match unit {
        Unit::Raw(b'\\') => Err(PathError::Backslash),
        Unit::Raw(byte) | Unit::Escaped(byte) if byte.is_ascii_control() => Err(PathError::ControlCharacter),
        _ => Ok(unit),
    }
}

fn decode_hex_pair(pair: &[u8]) -> Option<u8> {
    match pair {
        [high, low] => Some((hex_value(*high)? << 4) | hex_value(*low)?),
        _ => None,
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// How a unit is written out: as its character, or as a `%XX` escape.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Literal(u8),
    Escape(u8),
}

/// Steps 3 to 5: the canonical form of one unit in the forwarded path.
fn canonical_piece(unit: Unit, escaped_slashes: EscapedSlashes) -> Result<Piece, PathError> {
    match unit {
        Unit::Raw(byte) if byte == b'/' || is_raw_path_char(byte) => Ok(Piece::Literal(byte)),
        Unit::Escaped(byte) if is_unreserved(byte) => Ok(Piece::Literal(byte)),
        Unit::Escaped(b'/' | b'\\' | b';') => match escaped_slashes {
            EscapedSlashes::Reject => Err(PathError::EscapedSeparator),
            EscapedSlashes::Keep => Ok(Piece::Escape(unit.byte())),
        },
        Unit::Raw(byte) | Unit::Escaped(byte) => Ok(Piece::Escape(byte)),
    }
}

/// How a unit of a forwarded path reads in the match key.
#[derive(Debug, Clone, Copy)]
enum KeyPiece {
    Separator,
    Parameters,
    Text(Piece),
}

/// Steps a and b: separators (escaped ones included), parameter starts, and
/// text with the escapes a backend decoding once would read as characters
/// decoded. Unreserved escapes never occur in a forwarded path; they are
/// decoded too so a caller passing a raw path cannot hide a dot segment.
fn key_piece(unit: Unit) -> KeyPiece {
    match unit {
        Unit::Raw(b'/') | Unit::Escaped(b'/' | b'\\') => KeyPiece::Separator,
        Unit::Raw(b';') | Unit::Escaped(b';') => KeyPiece::Parameters,
        Unit::Raw(byte) if is_raw_path_char(byte) => KeyPiece::Text(Piece::Literal(byte)),
        Unit::Escaped(byte) if is_unreserved(byte) || is_decoded_in_key(byte) => KeyPiece::Text(Piece::Literal(byte)),
        Unit::Raw(byte) | Unit::Escaped(byte) => KeyPiece::Text(Piece::Escape(byte)),
    }
}

/// Builds a match key one segment at a time in a single buffer, so that
/// finishing a segment (dropping parameters, trimming, merging) is a
/// truncation rather than an allocation.
struct KeyBuilder {
    key: String,
    segment_start: usize,
    in_parameters: bool,
    case_insensitive: bool,
}

impl KeyBuilder {
    fn new(capacity: usize, case_insensitive: bool) -> Self {
        let mut key = String::with_capacity(capacity);
        key.push('/');
        Self {
            segment_start: key.len(),
            key,
            in_parameters: false,
            case_insensitive,
        }
    }

    fn push(&mut self, piece: Piece) {
        // Step c: everything from the first `;` to the end of the segment is
        // parameters, which the rules must not see.
        if self.in_parameters {
            return;
        }
        match piece {
            Piece::Literal(byte) if self.case_insensitive => {
                self.key.push(char::from(byte.to_ascii_lowercase()));
            }
            Piece::Literal(byte) => self.key.push(char::from(byte)),
            Piece::Escape(byte) if self.case_insensitive => {
                push_escape(&mut self.key, byte, HexCase::Lower);
            }
            Piece::Escape(byte) => push_escape(&mut self.key, byte, HexCase::Upper),
        }
    }

    fn start_parameters(&mut self) {
        self.in_parameters = true;
    }

    fn end_segment(&mut self) -> Result<(), PathError> {
        self.close_segment()?;
        // Step e: an empty segment adds no separator, which merges slashes.
        if self.key.len() > self.segment_start {
            self.key.push('/');
        }
        self.segment_start = self.key.len();
        self.in_parameters = false;
        Ok(())
    }

    /// Closes the last segment. If it is empty the key already ends in `/`,
    /// which keeps a trailing slash.
    fn finish(mut self) -> Result<String, PathError> {
        self.close_segment()?;
        Ok(self.key)
    }

    fn close_segment(&mut self) -> Result<(), PathError> {
        // Steps c and d come before f: a segment that is a dot segment as
        // written is reported as such, not as a Windows trailing-dot case.
        if is_dot_segment(&self.key[self.segment_start..]) {
            return Err(if self.in_parameters {
                PathError::DotSegmentWithParameters
            } else {
                PathError::AmbiguousDotSegment
            });
        }
        if self.case_insensitive {
            self.trim_trailing_dots_and_spaces()?;
        }
        Ok(())
    }

    /// Step f: Windows ignores trailing dots and spaces, so the key does too;
    /// a segment made only of them has no reliable reading at all.
    fn trim_trailing_dots_and_spaces(&mut self) -> Result<(), PathError> {
        let segment = &self.key[self.segment_start..];
        let trimmed_len = trim_dots_and_spaces(segment).len();
        if trimmed_len == 0 && !segment.is_empty() {
            return Err(PathError::AmbiguousDotSegment);
        }
        self.key.truncate(self.segment_start + trimmed_len);
        Ok(())
    }
}

/// Strips trailing `.` and `%20` from a key segment. Every `%` in a key starts
/// a three-character escape, so a `%20` suffix is always an escaped space.
fn trim_dots_and_spaces(mut segment: &str) -> &str {
    while let Some(rest) = segment.strip_suffix('.').or_else(|| segment.strip_suffix("%20")) {
        segment = rest;
    }
    segment
}

#[derive(Debug, Clone, Copy)]
enum HexCase {
    Upper,
    Lower,
}

fn push_escape(out: &mut String, byte: u8, case: HexCase) {
    let digits: &[u8; 16] = match case {
        HexCase::Upper => b"0123456789ABCDEF",
        HexCase::Lower => b"0123456789abcdef",
    };
    out.push('%');
    out.push(char::from(digits[usize::from(byte >> 4)]));
    out.push(char::from(digits[usize::from(byte & 0x0F)]));
}

/// RFC 3986 unreserved: `A-Z a-z 0-9 - . _ ~`.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Characters left raw in a forwarded path besides `/`: unreserved,
/// sub-delims, `:` and `@` (RFC 3986 `pchar` minus escapes).
fn is_raw_path_char(byte: u8) -> bool {
    is_unreserved(byte) || is_sub_delim(byte) || matches!(byte, b':' | b'@')
}

fn is_sub_delim(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Step b: escapes of characters allowed raw in a path that are not
/// separators. A backend decoding once sees `%21` and `!` as the same path.
fn is_decoded_in_key(byte: u8) -> bool {
    (is_sub_delim(byte) && byte != b';') || matches!(byte, b':' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PathOptions {
        PathOptions::default()
    }

    fn keep() -> PathOptions {
        PathOptions {
            escaped_slashes: EscapedSlashes::Keep,
            ..PathOptions::default()
        }
    }

    fn no_merge() -> PathOptions {
        PathOptions {
            merge_slashes: false,
            ..PathOptions::default()
        }
    }

    fn insensitive() -> PathOptions {
        PathOptions {
            case_insensitive: true,
            ..PathOptions::default()
        }
    }

    #[track_caller]
    fn normalized(path: &str, opts: PathOptions) -> NormalizedPath {
        normalize(path, &opts).unwrap_or_else(|error| panic!("{path:?} was rejected: {error}"))
    }

    #[track_caller]
    fn forwarded(path: &str, opts: PathOptions) -> String {
        normalized(path, opts).forwarded
    }

    #[track_caller]
    fn key(path: &str, opts: PathOptions) -> String {
        normalized(path, opts).key
    }

    #[track_caller]
    fn rejection(path: &str, opts: PathOptions) -> PathError {
        match normalize(path, &opts) {
            Ok(accepted) => panic!("{path:?} was accepted as {accepted:?}"),
            Err(error) => error,
        }
    }

    #[track_caller]
    fn assert_forwarded(table: &[(&str, &str)], opts: PathOptions) {
        for &(input, expected) in table {
            assert_eq!(forwarded(input, opts), expected, "forwarded path of {input:?}");
        }
    }

    #[track_caller]
    fn assert_keys(table: &[(&str, &str)], opts: PathOptions) {
        for &(input, expected) in table {
            assert_eq!(key(input, opts), expected, "key of {input:?}");
        }
    }

    #[track_caller]
    fn assert_rejected(inputs: &[&str], opts: PathOptions, expected: PathError) {
        for &input in inputs {
            assert_eq!(rejection(input, opts), expected, "error for {input:?}");
        }
    }

    // Options and results.

    #[test]
    fn default_options_reject_escaped_separators_merge_slashes_and_keep_case() {
        assert_eq!(
            PathOptions::default(),
            PathOptions {
                escaped_slashes: EscapedSlashes::Reject,
                merge_slashes: true,
                case_insensitive: false,
            }
        );
    }

    #[test]
    fn error_messages_are_fixed_distinct_client_safe_text() {
        let all = [
            PathError::NotOriginForm,
            PathError::ControlCharacter,
            PathError::MalformedEscape,
            PathError::InvalidUtf8,
            PathError::Backslash,
            PathError::DoubleEncoded,
            PathError::EscapedSeparator,
            PathError::DotSegmentWithParameters,
            PathError::AmbiguousDotSegment,
        ];
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        for message in &messages {
            assert!(message.starts_with("the path "), "{message:?}");
            assert!(message.is_ascii() && !message.chars().any(|c| c.is_control()));
        }
        let mut distinct = messages.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), messages.len());
    }

    #[test]
    fn control_character_message_matches_the_documented_text() {
        assert_eq!(
            PathError::ControlCharacter.to_string(),
            "the path contains a control character"
        );
    }

    // Step 1: origin form.

    #[test]
    fn path_without_leading_slash_is_rejected() {
        assert_rejected(
            &["", "admin", "*", "http://host/admin", "%2Fadmin", "\\admin", " /admin"],
            defaults(),
            PathError::NotOriginForm,
        );
    }

    #[test]
    fn root_stays_root() {
        let root = normalized("/", defaults());
        assert_eq!(root.forwarded, "/");
        assert_eq!(root.key, "/");
        assert_eq!(key("/", insensitive()), "/");
        assert_eq!(forwarded("/", no_merge()), "/");
    }

    // Step 2: bytes no reading of a path may contain.

    #[test]
    fn raw_control_characters_are_rejected() {
        assert_rejected(
            &["/a\0b", "/a\nb", "/a\rb", "/a\tb", "/a\x1fb", "/a\x7fb", "/\x00"],
            defaults(),
            PathError::ControlCharacter,
        );
    }

    #[test]
    fn escaped_control_characters_are_rejected() {
        assert_rejected(
            &[
                "/a%00", "/a%0a", "/a%0A", "/a%0d%0a", "/a%09", "/a%1F", "/a%7F", "/a%7f",
            ],
            defaults(),
            PathError::ControlCharacter,
        );
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        assert_rejected(
            &[
                "/%zz", "/%4", "/a%", "/%", "/%g0", "/%0g", "/%%41", "/%-1", "/% 1", "/%é",
            ],
            defaults(),
            PathError::MalformedEscape,
        );
    }

    #[test]
    fn raw_backslash_is_rejected() {
        assert_rejected(
            &["/a\\b", "/..\\admin", "/admin\\", "/\\\\host"],
            defaults(),
            PathError::Backslash,
        );
    }

    #[test]
    fn raw_backslash_is_rejected_even_when_escaped_separators_are_kept() {
        assert_eq!(rejection("/a\\..\\admin", keep()), PathError::Backslash);
    }

    #[test]
    fn double_encoded_dot_is_rejected() {
        assert_rejected(
            &["/%252e", "/%252E", "/%252e%252e/admin", "/a/%252e%252e"],
            defaults(),
            PathError::DoubleEncoded,
        );
    }

    #[test]
    fn double_encoding_spread_over_several_escapes_is_rejected() {
        assert_rejected(
            &["/%25%32%65", "/%25%32e", "/%252%65", "/%25%34%31"],
            defaults(),
            PathError::DoubleEncoded,
        );
    }

    #[test]
    fn double_encoded_letter_is_rejected() {
        assert_rejected(&["/%2541dmin", "/%2561"], defaults(), PathError::DoubleEncoded);
    }

    #[test]
    fn double_encoded_slash_is_rejected_in_both_modes() {
        assert_eq!(rejection("/a%252Fb", defaults()), PathError::DoubleEncoded);
        assert_eq!(rejection("/a%252fb", keep()), PathError::DoubleEncoded);
    }

    #[test]
    fn triple_encoding_is_rejected() {
        assert_eq!(rejection("/%25252e", defaults()), PathError::DoubleEncoded);
    }

    #[test]
    fn escaped_percent_not_followed_by_two_hex_digits_is_kept() {
        assert_forwarded(
            &[
                ("/%25zz", "/%25zz"),
                ("/%25", "/%25"),
                ("/a%25/", "/a%25/"),
                ("/%25g1", "/%25g1"),
                ("/%251g", "/%251g"),
                ("/%25%20", "/%25%20"),
                ("/%25 ", "/%25%20"),
                ("/100%25", "/100%25"),
            ],
            defaults(),
        );
    }

    #[test]
    fn escaped_percent_is_never_decoded_again() {
        let once = normalized("/%25zz", defaults());
        assert_eq!(once.key, "/%25zz");
        assert_eq!(normalized(&once.forwarded, defaults()), once);
    }

    #[test]
    fn raw_non_ascii_is_percent_encoded() {
        assert_forwarded(
            &[
                ("/café", "/caf%C3%A9"),
                ("/日本", "/%E6%97%A5%E6%9C%AC"),
                ("/😀", "/%F0%9F%98%80"),
            ],
            defaults(),
        );
    }

    #[test]
    fn escaped_non_ascii_is_kept_with_upper_case_hex() {
        assert_forwarded(
            &[("/caf%c3%a9", "/caf%C3%A9"), ("/caf%C3%A9", "/caf%C3%A9")],
            defaults(),
        );
    }

    #[test]
    fn raw_and_escaped_non_ascii_are_the_same_path() {
        assert_eq!(normalized("/café", defaults()), normalized("/caf%C3%A9", defaults()));
        assert_eq!(normalized("/café", defaults()), normalized("/caf%c3%A9", defaults()));
    }

    #[test]
    fn overlong_utf8_is_rejected() {
        assert_rejected(
            &[
                "/%C0%AE",
                "/%C0%AF",
                "/%C0%AE%C0%AE/admin",
                "/%E0%80%AE",
                "/%C1%81",
                "/%F0%80%80%AF",
            ],
            defaults(),
            PathError::InvalidUtf8,
        );
    }

    #[test]
    fn encoded_surrogate_is_rejected() {
        assert_rejected(&["/%ED%A0%80", "/%ed%bf%bf"], defaults(), PathError::InvalidUtf8);
    }

    #[test]
    fn truncated_utf8_sequence_is_rejected() {
        assert_rejected(
            &["/%C3", "/%C3/", "/%E2%82", "/%F0%9F%98"],
            defaults(),
            PathError::InvalidUtf8,
        );
    }

    #[test]
    fn stray_continuation_byte_is_rejected() {
        assert_rejected(&["/%A9", "/%80x", "/a%BF"], defaults(), PathError::InvalidUtf8);
    }

    #[test]
    fn bytes_that_are_never_utf8_are_rejected() {
        assert_rejected(&["/%FF", "/%fe", "/%F5%80%80%80"], defaults(), PathError::InvalidUtf8);
    }

    #[test]
    fn escaped_byte_mixed_with_raw_non_ascii_is_rejected() {
        assert_rejected(&["/%C3é", "/é%A9", "/%E6日"], defaults(), PathError::InvalidUtf8);
    }

    #[test]
    fn raw_utf8_completed_by_escapes_is_accepted_when_whole() {
        assert_eq!(forwarded("/é%C3%A9", defaults()), "/%C3%A9%C3%A9");
    }

    // Step 3: escaped separators.

    #[test]
    fn escaped_slash_is_rejected_by_default() {
        assert_rejected(
            &["/a%2Fb", "/a%2fb", "/%2F", "/admin%2F"],
            defaults(),
            PathError::EscapedSeparator,
        );
    }

    #[test]
    fn escaped_backslash_is_rejected_by_default() {
        assert_rejected(
            &["/a%5Cb", "/a%5cb", "/..%5cadmin"],
            defaults(),
            PathError::EscapedSeparator,
        );
    }

    #[test]
    fn escaped_semicolon_is_rejected_by_default() {
        assert_rejected(
            &["/a%3Bb", "/a%3bb", "/..%3B/admin"],
            defaults(),
            PathError::EscapedSeparator,
        );
    }

    #[test]
    fn kept_escaped_slash_or_backslash_inside_parameters_is_rejected() {
        // Found by the backend-reading property: the key ended the parameters at
        // `%5C` (`/%23/admin`) while decode-then-strip read `/admin`.
        assert_rejected(
            &["/;%5c#%2fadmin", "/a;x%5Cy/b", "/a;x=%2F/admin"],
            keep(),
            PathError::EscapedSeparatorInParameters,
        );
    }

    #[test]
    fn kept_escaped_slash_is_upper_cased_and_read_as_slash_in_the_key() {
        let path = normalized("/a%2fb", keep());
        assert_eq!(path.forwarded, "/a%2Fb");
        assert_eq!(path.key, "/a/b");
    }

    #[test]
    fn kept_escaped_backslash_is_upper_cased_and_read_as_slash_in_the_key() {
        let path = normalized("/a%5cb", keep());
        assert_eq!(path.forwarded, "/a%5Cb");
        assert_eq!(path.key, "/a/b");
    }

    #[test]
    fn kept_escaped_semicolon_is_upper_cased_and_starts_parameters_in_the_key() {
        let path = normalized("/admin%3bx=1/users", keep());
        assert_eq!(path.forwarded, "/admin%3Bx=1/users");
        assert_eq!(path.key, "/admin/users");
    }

    #[test]
    fn kept_escaped_slash_is_not_a_separator_for_dot_removal() {
        assert_eq!(forwarded("/a%2Fb/../c", keep()), "/c");
        assert_eq!(forwarded("/a/b%2Fc/./d", keep()), "/a/b%2Fc/d");
    }

    #[test]
    fn kept_escaped_slashes_merge_in_the_key() {
        assert_keys(
            &[
                ("/a%2F%2Fb", "/a/b"),
                ("/%2Fadmin", "/admin"),
                ("/a%2F", "/a/"),
                ("/a%5C%2F/b", "/a/b"),
            ],
            keep(),
        );
    }

    #[test]
    fn escaped_slash_hiding_a_dot_segment_is_ambiguous() {
        assert_rejected(
            &[
                "/admin%2F..%2Fsecret",
                "/public%2F..%2Fadmin",
                "/a%5C..%5Cadmin",
                "/a%2F.%2Fb",
                "/a/..%2Fb",
                "/a%2F..",
            ],
            keep(),
            PathError::AmbiguousDotSegment,
        );
    }

    #[test]
    fn escaped_slash_with_escaped_dots_hiding_a_dot_segment_is_ambiguous() {
        assert_rejected(
            &["/a%2F%2e%2e%2Fadmin", "/a%2f%2E.%2fadmin", "/a%5c.%2e%5cadmin"],
            keep(),
            PathError::AmbiguousDotSegment,
        );
    }

    #[test]
    fn kept_escaped_semicolon_after_dots_is_a_dot_segment_with_parameters() {
        assert_rejected(
            &["/..%3B/admin", "/.%3Bx/admin", "/a%2F..%3Bx/b", "/%2e%2e%3b/admin"],
            keep(),
            PathError::DotSegmentWithParameters,
        );
    }

    // Step 4: escapes.

    #[test]
    fn escaped_unreserved_characters_are_decoded() {
        assert_forwarded(
            &[
                ("/%61dmin", "/admin"),
                ("/%41DMIN", "/ADMIN"),
                ("/%7E", "/~"),
                ("/%7euser", "/~user"),
                ("/a%2Db%5Fc", "/a-b_c"),
                ("/%30%39", "/09"),
                ("/a%2eb", "/a.b"),
                ("/%5A%7a", "/Zz"),
            ],
            defaults(),
        );
    }

    #[test]
    fn other_escapes_are_kept_with_upper_case_hex() {
        assert_forwarded(
            &[
                ("/a%3ab", "/a%3Ab"),
                ("/a%20b", "/a%20b"),
                ("/%22%3c%3e", "/%22%3C%3E"),
                ("/%7b%7D", "/%7B%7D"),
                ("/%3f%23", "/%3F%23"),
                ("/%5b%5d", "/%5B%5D"),
            ],
            defaults(),
        );
    }

    #[test]
    fn escaped_sub_delims_stay_escaped_in_the_forwarded_path() {
        assert_forwarded(
            &[
                ("/admin%21", "/admin%21"),
                ("/a%40b", "/a%40b"),
                ("/a%2a", "/a%2A"),
                ("/a%3d1", "/a%3D1"),
            ],
            defaults(),
        );
    }

    #[test]
    fn mixed_case_escapes_decode_alike() {
        let expected = normalized("/admin", defaults());
        for input in ["/%61dmin", "/%61%64%6D%69%6E", "/%61%64%6d%69%6e", "/adm%69n"] {
            assert_eq!(normalized(input, defaults()), expected, "{input:?}");
        }
    }

    // Step 5: raw characters.

    #[test]
    fn raw_sub_delims_colon_and_at_are_kept() {
        assert_forwarded(
            &[
                ("/a!$&'()*+,=:@b", "/a!$&'()*+,=:@b"),
                ("/x;y=1", "/x;y=1"),
                ("/-._~", "/-._~"),
            ],
            defaults(),
        );
    }

    #[test]
    fn raw_characters_outside_the_path_grammar_are_encoded() {
        assert_forwarded(
            &[
                ("/a b", "/a%20b"),
                ("/\"", "/%22"),
                ("/<>", "/%3C%3E"),
                ("/[]", "/%5B%5D"),
                ("/^", "/%5E"),
                ("/`", "/%60"),
                ("/{|}", "/%7B%7C%7D"),
                ("/?", "/%3F"),
                ("/#", "/%23"),
            ],
            defaults(),
        );
    }

    // Step 6: dot segments with parameters.

    #[test]
    fn dot_dot_semicolon_is_rejected() {
        assert_rejected(
            &["/..;/admin", "/..;x/admin", "/public/..;/admin", "/a/..;", "/..;a=b;c"],
            defaults(),
            PathError::DotSegmentWithParameters,
        );
    }

    #[test]
    fn dot_semicolon_is_rejected() {
        assert_rejected(
            &["/.;x/", "/.;", "/a/.;/b"],
            defaults(),
            PathError::DotSegmentWithParameters,
        );
    }

    #[test]
    fn escaped_dots_with_semicolon_are_rejected() {
        assert_rejected(
            &["/%2e%2e;/admin", "/.%2e;/admin", "/%2E.;/admin", "/%2E;/a"],
            defaults(),
            PathError::DotSegmentWithParameters,
        );
    }

    #[test]
    fn dot_segment_with_parameters_is_rejected_even_when_later_removed() {
        assert_eq!(rejection("/.;x/../a", defaults()), PathError::DotSegmentWithParameters);
        assert_eq!(rejection("/a/..;/..", defaults()), PathError::DotSegmentWithParameters);
    }

    #[test]
    fn dot_segment_with_parameters_is_rejected_without_merging() {
        assert_eq!(
            rejection("//..;/admin", no_merge()),
            PathError::DotSegmentWithParameters
        );
    }

    #[test]
    fn dots_followed_by_more_text_before_semicolon_are_not_a_dot_segment() {
        assert_forwarded(
            &[
                ("/a..;x/b", "/a..;x/b"),
                ("/...;x", "/...;x"),
                ("/..a;x", "/..a;x"),
                ("/.x;y", "/.x;y"),
            ],
            defaults(),
        );
    }

    // Step 7: merging slashes.

    #[test]
    fn merged_slashes_collapse_empty_segments() {
        assert_forwarded(
            &[
                ("//a///b//", "/a/b/"),
                ("//", "/"),
                ("///", "/"),
                ("/a//b", "/a/b"),
                ("//a", "/a"),
            ],
            defaults(),
        );
    }

    #[test]
    fn merging_keeps_a_trailing_slash() {
        assert_forwarded(&[("/a/b/", "/a/b/"), ("/a//", "/a/"), ("/a/b///", "/a/b/")], defaults());
    }

    #[test]
    fn merging_happens_before_dot_removal() {
        assert_forwarded(
            &[
                ("/a//../b", "/b"),
                ("/a///..", "/"),
                ("/a/b//..//c", "/a/c"),
                ("/a//./b", "/a/b"),
            ],
            defaults(),
        );
    }

    #[test]
    fn without_merging_empty_segments_are_kept() {
        assert_forwarded(
            &[("//a///b//", "//a///b//"), ("//", "//"), ("/a//b", "/a//b")],
            no_merge(),
        );
    }

    #[test]
    fn without_merging_dot_removal_follows_rfc3986_over_empty_segments() {
        assert_forwarded(
            &[
                ("/a//../b", "/a/b"),
                ("//..", "/"),
                ("/a//..", "/a/"),
                ("/.//a", "//a"),
                ("/a/b//../../c", "/a/c"),
            ],
            no_merge(),
        );
    }

    #[test]
    fn key_always_merges_slashes() {
        assert_keys(&[("//a///b//", "/a/b/"), ("//", "/"), ("/a//b", "/a/b")], no_merge());
    }

    // Step 8: dot segments.

    #[test]
    fn rfc3986_dot_removal_examples() {
        assert_forwarded(
            &[
                ("/a/./b/../c", "/a/c"),
                ("/..", "/"),
                ("/a/b/..", "/a/"),
                ("/a/.", "/a/"),
                ("/../../x", "/x"),
                ("/a/b/c/./../../g", "/a/g"),
                ("/mid/content=5/../6", "/mid/6"),
            ],
            defaults(),
        );
    }

    #[test]
    fn single_dot_segments_are_removed() {
        assert_forwarded(
            &[
                ("/a/./b", "/a/b"),
                ("/./a", "/a"),
                ("/././.", "/"),
                ("/.", "/"),
                ("/./", "/"),
            ],
            defaults(),
        );
    }

    #[test]
    fn double_dot_segment_removes_the_previous_segment() {
        assert_forwarded(
            &[
                ("/a/b/../c", "/a/c"),
                ("/a/../b/../c", "/c"),
                ("/a/b/c/../../d", "/a/d"),
            ],
            defaults(),
        );
    }

    #[test]
    fn final_dot_segment_leaves_a_trailing_slash() {
        assert_forwarded(
            &[
                ("/a/.", "/a/"),
                ("/a/b/..", "/a/"),
                ("/a/..", "/"),
                ("/a/b/../.", "/a/"),
            ],
            defaults(),
        );
    }

    #[test]
    fn dot_segments_cannot_climb_above_root() {
        assert_forwarded(
            &[
                ("/../../../../etc/passwd", "/etc/passwd"),
                ("/a/../../b", "/b"),
                ("/../", "/"),
            ],
            defaults(),
        );
    }

    #[test]
    fn long_runs_of_dot_dot_stop_at_root() {
        let path = format!("{}/etc/passwd", "/..".repeat(10_000));
        assert_eq!(forwarded(&path, defaults()), "/etc/passwd");
        let path = format!("/a/b{}", "/../x".repeat(5_000));
        assert_eq!(forwarded(&path, defaults()), "/a/x");
    }

    #[test]
    fn escaped_dot_segments_are_removed() {
        assert_forwarded(
            &[
                ("/a/%2e%2E/b", "/b"),
                ("/a/.%2e/b", "/b"),
                ("/a/%2e./b", "/b"),
                ("/a/%2e/b", "/a/b"),
                ("/a/b/%2E%2E", "/a/"),
                ("/%2e%2e/%2e%2e/admin", "/admin"),
            ],
            defaults(),
        );
    }

    #[test]
    fn dots_inside_a_segment_are_not_dot_segments() {
        assert_forwarded(
            &[
                ("/a../b", "/a../b"),
                ("/...", "/..."),
                ("/.hidden", "/.hidden"),
                ("/..a/b", "/..a/b"),
                ("/a./b", "/a./b"),
            ],
            defaults(),
        );
    }

    // Match key: parameters, decoding and dot segments.

    #[test]
    fn semicolon_parameters_do_not_hide_admin() {
        let path = normalized("/admin;x=1/users", defaults());
        assert_eq!(path.forwarded, "/admin;x=1/users");
        assert_eq!(path.key, "/admin/users");
    }

    #[test]
    fn semicolon_parameters_on_every_segment_are_dropped_from_the_key() {
        assert_keys(
            &[
                ("/a;x/b;y=1/c;z", "/a/b/c"),
                ("/admin;jsessionid=1", "/admin"),
                ("/a;x;y/b", "/a/b"),
                ("/a;/b;", "/a/b"),
            ],
            defaults(),
        );
    }

    #[test]
    fn segment_made_only_of_parameters_disappears_from_the_key() {
        assert_keys(
            &[
                ("/a/;x/b", "/a/b"),
                ("/;x", "/"),
                ("/a/;x", "/a/"),
                ("/;x/admin", "/admin"),
            ],
            defaults(),
        );
    }

    #[test]
    fn escaped_sub_delims_colon_and_at_read_as_characters_in_the_key() {
        for (escaped, raw) in [
            ("%21", "!"),
            ("%24", "$"),
            ("%26", "&"),
            ("%27", "'"),
            ("%28", "("),
            ("%29", ")"),
            ("%2A", "*"),
            ("%2B", "+"),
            ("%2C", ","),
            ("%3D", "="),
            ("%3A", ":"),
            ("%40", "@"),
        ] {
            let escaped_path = format!("/admin{escaped}");
            let raw_path = format!("/admin{raw}");
            assert_eq!(key(&escaped_path, defaults()), raw_path, "{escaped}");
            assert_eq!(key(&raw_path, defaults()), raw_path, "{raw}");
        }
    }

    #[test]
    fn lower_case_escaped_sub_delims_read_as_characters_in_the_key() {
        assert_eq!(key("/a%2a%3a%2b", defaults()), "/a*:+");
    }

    #[test]
    fn other_escapes_stay_in_the_key() {
        assert_keys(
            &[
                ("/a%20b", "/a%20b"),
                ("/100%25", "/100%25"),
                ("/caf%C3%A9", "/caf%C3%A9"),
                ("/a%3F", "/a%3F"),
                ("/a%23", "/a%23"),
                ("/a%22", "/a%22"),
            ],
            defaults(),
        );
    }

    #[test]
    fn key_is_the_match_key_of_the_forwarded_path() {
        for input in ["/a/../b;x", "/%61dmin%21", "/A//B/./c", "/caf%c3%a9;v=1", "/"] {
            for opts in [defaults(), keep(), no_merge(), insensitive()] {
                let path = normalized(input, opts);
                assert_eq!(match_key(&path.forwarded, &opts), Ok(path.key), "{input:?} {opts:?}");
            }
        }
    }

    // Match key: case-insensitive routes.

    #[test]
    fn case_insensitive_key_is_lower_case_and_forwarded_path_keeps_case() {
        let path = normalized("/ADMIN/Users", insensitive());
        assert_eq!(path.forwarded, "/ADMIN/Users");
        assert_eq!(path.key, "/admin/users");
    }

    #[test]
    fn case_insensitive_key_lower_cases_escape_hex() {
        assert_keys(
            &[("/caf%C3%A9", "/caf%c3%a9"), ("/a%3F", "/a%3f"), ("/A%5B", "/a%5b")],
            insensitive(),
        );
    }

    #[test]
    fn case_insensitive_key_strips_trailing_dots() {
        assert_keys(
            &[
                ("/ADMIN./x", "/admin/x"),
                ("/admin.../x", "/admin/x"),
                ("/admin.", "/admin"),
            ],
            insensitive(),
        );
    }

    #[test]
    fn case_insensitive_key_strips_trailing_spaces() {
        assert_keys(
            &[
                ("/admin%20/x", "/admin/x"),
                ("/admin /x", "/admin/x"),
                ("/admin. %20./x", "/admin/x"),
            ],
            insensitive(),
        );
    }

    #[test]
    fn case_insensitive_key_keeps_inner_dots_and_spaces() {
        assert_keys(
            &[("/a.b/x", "/a.b/x"), ("/a%20b", "/a%20b"), ("/.hidden", "/.hidden")],
            insensitive(),
        );
    }

    #[test]
    fn case_insensitive_key_strips_trailing_dots_before_parameters() {
        assert_keys(
            &[("/admin.;x=1/y", "/admin/y"), ("/admin%20;x", "/admin")],
            insensitive(),
        );
    }

    #[test]
    fn case_insensitive_segment_of_only_dots_and_spaces_is_ambiguous() {
        assert_rejected(
            &["/.../x", "/.. /x", "/%20/x", "/. ./", "/a/....", "/a/ ", "/...;x"],
            insensitive(),
            PathError::AmbiguousDotSegment,
        );
    }

    #[test]
    fn case_sensitive_key_keeps_case_and_trailing_dots_and_spaces() {
        assert_keys(
            &[
                ("/Admin./x", "/Admin./x"),
                ("/admin%20/x", "/admin%20/x"),
                ("/.../x", "/.../x"),
            ],
            defaults(),
        );
    }

    // match_key on its own.

    #[test]
    fn match_key_rejects_dot_segments_it_would_have_to_resolve() {
        for path in ["/a/../b", "/./a", "/a/.", "/.."] {
            assert_eq!(
                match_key(path, &defaults()),
                Err(PathError::AmbiguousDotSegment),
                "{path:?}"
            );
        }
    }

    #[test]
    fn match_key_rejects_dot_segments_with_parameters() {
        for path in ["/..;x/b", "/a/.;"] {
            assert_eq!(
                match_key(path, &defaults()),
                Err(PathError::DotSegmentWithParameters),
                "{path:?}"
            );
        }
    }

    #[test]
    fn match_key_rejects_what_no_path_may_contain() {
        let cases = [
            ("admin", PathError::NotOriginForm),
            ("", PathError::NotOriginForm),
            ("/a%zz", PathError::MalformedEscape),
            ("/a%0a", PathError::ControlCharacter),
            ("/a\n", PathError::ControlCharacter),
            ("/a\\b", PathError::Backslash),
        ];
        for (path, expected) in cases {
            assert_eq!(match_key(path, &defaults()), Err(expected), "{path:?}");
        }
    }

    #[test]
    fn match_key_puts_any_input_into_canonical_characters() {
        let cases = [
            ("/%61dmin", "/admin"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/a b", "/a%20b"),
            ("/a%3a", "/a:"),
        ];
        for (path, expected) in cases {
            assert_eq!(match_key(path, &defaults()).as_deref(), Ok(expected), "{path:?}");
        }
    }

    #[test]
    fn match_key_sees_escaped_dot_segments_in_raw_input() {
        assert_eq!(
            match_key("/a/%2e%2e/b", &defaults()),
            Err(PathError::AmbiguousDotSegment)
        );
    }

    #[test]
    fn match_key_of_a_key_is_the_key() {
        for opts in [defaults(), insensitive()] {
            for input in ["/ADMIN;x/Caf%C3%A9./b%21", "/a/b/", "/%25zz/x%20y"] {
                let path = normalized(input, opts);
                assert_eq!(match_key(&path.key, &opts), Ok(path.key.clone()), "{input:?}");
            }
        }
    }

    // Canonical output and the fast path.

    #[test]
    fn normalizing_a_forwarded_path_again_changes_nothing() {
        for input in [
            "/a/./b/../c;x",
            "//a//",
            "/caf%c3%a9",
            "/a b",
            "/%25zz",
            "/a%2fb/..",
            "/x/%2E%2e/",
        ] {
            for opts in [defaults(), keep(), no_merge(), insensitive()] {
                if let Ok(path) = normalize(input, &opts) {
                    assert_eq!(normalize(&path.forwarded, &opts), Ok(path), "{input:?} {opts:?}");
                }
            }
        }
    }

    #[test]
    fn canonical_paths_take_the_fast_path() {
        for path in ["/", "/api/v1/users", "/a/b/", "/a.b/c-d_e~f", "/a./b", "/.../x"] {
            assert!(is_canonical(path, &defaults()), "{path:?}");
        }
        assert!(is_canonical("/api/v1/users/", &insensitive()));
    }

    #[test]
    fn paths_needing_work_skip_the_fast_path() {
        for path in [
            "", "a", "//", "/a//b", "/.", "/a/..", "/a;x", "/a%41", "/a b", "/é", "/a:b", "/a\\b",
        ] {
            assert!(!is_canonical(path, &defaults()), "{path:?}");
        }
        for path in ["/Admin", "/admin.", "/a/.../b"] {
            assert!(!is_canonical(path, &insensitive()), "{path:?}");
        }
    }

    #[test]
    fn fast_path_agrees_with_full_normalization() {
        for path in ["/", "/api/v1/users", "/a/b/", "/a.b/c-d_e~f", "/a./b", "/.../x", "/Z"] {
            for opts in [defaults(), keep(), no_merge(), insensitive()] {
                assert_eq!(normalize(path, &opts), normalize_slow(path, &opts), "{path:?} {opts:?}");
            }
        }
    }

    #[test]
    fn long_paths_are_handled() {
        let path = "/segment".repeat(100_000);
        assert_eq!(forwarded(&path, defaults()), path);
        let messy = "/a;x//%41/.".repeat(50_000);
        let expected = format!("{}/", "/a/A".repeat(50_000));
        assert_eq!(forwarded(&messy, defaults()).len(), "/a;x/A".len() * 50_000 + 1);
        assert_eq!(key(&messy, defaults()), expected);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "/", "//", ".", "..", "/./", "/../", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%3b", "%3B", ";", ";x=1",
        "%25", "%41", "%61", "admin", "ADMIN", "a.", "%20", " ", "é", "%C3%A9", "%c3%a9", "~", "*", "!", "%21", "%3a",
        "?", "%", "2e", "41", "%C3", "%A9", "%C0",
    ];

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => proptest::sample::select(PIECES).prop_map(str::to_owned),
            1 => (0u8..0x80).prop_map(|byte| char::from(byte).to_string()),
            1 => any::<char>().prop_map(String::from),
        ]
    }

    /// Paths built from the pieces backends disagree about, mostly origin-form.
    fn tricky_path() -> impl Strategy<Value = String> {
        (
            prop_oneof![9 => Just(true), 1 => Just(false)],
            proptest::collection::vec(piece(), 0..14),
        )
            .prop_map(|(leading_slash, pieces)| {
                let mut path = String::from(if leading_slash { "/" } else { "" });
                path.extend(pieces);
                path
            })
    }

    /// Paths that are often, but not always, already canonical.
    fn plain_path() -> impl Strategy<Value = String> {
        "(/[a-zA-Z0-9._~-]{0,4}){0,6}"
    }

    fn options() -> impl Strategy<Value = PathOptions> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(keep, merge_slashes, case_insensitive)| PathOptions {
            escaped_slashes: if keep {
                EscapedSlashes::Keep
            } else {
                EscapedSlashes::Reject
            },
            merge_slashes,
            case_insensitive,
        })
    }

    fn segments(path: &str) -> Vec<&str> {
        path.strip_prefix('/')
            .map(|rest| rest.split('/').collect())
            .unwrap_or_default()
    }

    fn has_dot_segment(path: &str) -> bool {
        segments(path).iter().any(|segment| is_dot_segment(segment))
    }

    fn has_inner_empty_segment(path: &str) -> bool {
        let segments = segments(path);
        segments.len() > 1 && segments[..segments.len() - 1].iter().any(|segment| segment.is_empty())
    }

    fn has_double_encoding(path: &str) -> bool {
        path.as_bytes().windows(5).any(
            |window| matches!(window, [b'%', b'2', b'5', high, low] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit()),
        )
    }

    /// Every byte is a raw path character, `/`, or the start or digit of a
    /// `%XX` escape whose hex digits are in `case`.
    fn has_only_canonical_characters(path: &str, case: HexCase) -> bool {
        let hex_digit = |byte: &u8| match case {
            HexCase::Upper => matches!(byte, b'0'..=b'9' | b'A'..=b'F'),
            HexCase::Lower => matches!(byte, b'0'..=b'9' | b'a'..=b'f'),
        };
        let bytes = path.as_bytes();
        let mut position = 0;
        while let Some(&byte) = bytes.get(position) {
            if byte == b'%' {
                match bytes.get(position + 1..position + 3) {
                    Some([high, low]) if hex_digit(high) && hex_digit(low) => position += 3,
                    _ => return false,
                }
            } else if byte == b'/' || is_raw_path_char(byte) {
                position += 1;
            } else {
                return false;
            }
        }
        true
    }

    proptest! {
        #[test]
        fn normalizing_the_forwarded_path_again_changes_nothing(path in tricky_path(), opts in options()) {
            if let Ok(normalized) = normalize(&path, &opts) {
                prop_assert_eq!(normalize(&normalized.forwarded, &opts), Ok(normalized));
            }
        }

        #[test]
        fn key_is_the_match_key_of_the_forwarded_path(path in tricky_path(), opts in options()) {
            if let Ok(normalized) = normalize(&path, &opts) {
                prop_assert_eq!(match_key(&normalized.forwarded, &opts), Ok(normalized.key));
            }
        }

        #[test]
        fn forwarded_path_is_canonical(path in tricky_path(), opts in options()) {
            if let Ok(normalized) = normalize(&path, &opts) {
                let forwarded = normalized.forwarded.as_str();
                prop_assert!(forwarded.starts_with('/'));
                prop_assert!(!has_dot_segment(forwarded), "{:?}", forwarded);
                prop_assert!(!has_double_encoding(forwarded), "{:?}", forwarded);
                prop_assert!(has_only_canonical_characters(forwarded, HexCase::Upper), "{:?}", forwarded);
                prop_assert!(!forwarded.bytes().any(|byte| byte.is_ascii_control()));
                if opts.merge_slashes {
                    prop_assert!(!has_inner_empty_segment(forwarded), "{:?}", forwarded);
                }
            }
        }

        #[test]
        fn key_has_no_parameters_dot_segments_or_empty_segments(path in tricky_path(), opts in options()) {
            if let Ok(normalized) = normalize(&path, &opts) {
                let key = normalized.key.as_str();
                prop_assert!(key.starts_with('/'));
                prop_assert!(!key.contains(';'), "{:?}", key);
                prop_assert!(!has_dot_segment(key), "{:?}", key);
                prop_assert!(!has_inner_empty_segment(key), "{:?}", key);
                if opts.case_insensitive {
                    prop_assert!(has_only_canonical_characters(key, HexCase::Lower), "{:?}", key);
                    prop_assert!(!key.bytes().any(|byte| byte.is_ascii_uppercase()), "{:?}", key);
                    prop_assert!(
                        segments(key).iter().all(|segment| trim_dots_and_spaces(segment) == *segment),
                        "{:?}", key
                    );
                } else {
                    prop_assert!(has_only_canonical_characters(key, HexCase::Upper), "{:?}", key);
                }
            }
        }

        #[test]
        fn match_key_of_a_key_is_the_key(path in tricky_path(), opts in options()) {
            if let Ok(normalized) = normalize(&path, &opts) {
                prop_assert_eq!(match_key(&normalized.key, &opts), Ok(normalized.key));
            }
        }

        #[test]
        fn match_key_output_is_a_fixed_point_for_any_input(path in tricky_path(), opts in options()) {
            if let Ok(key) = match_key(&path, &opts) {
                prop_assert_eq!(match_key(&key, &opts), Ok(key));
            }
        }

        #[test]
        fn fast_path_agrees_with_full_normalization(
            path in prop_oneof![plain_path(), tricky_path()],
            opts in options(),
        ) {
            prop_assert_eq!(normalize(&path, &opts), normalize_slow(&path, &opts));
            prop_assert_eq!(match_key(&path, &opts), match_key_slow(&path, opts.case_insensitive));
        }

        #[test]
        fn arbitrary_strings_never_panic(path in any::<String>(), opts in options()) {
            let _ = normalize(&path, &opts);
            let _ = match_key(&path, &opts);
            let rooted = format!("/{path}");
            let _ = normalize(&rooted, &opts);
            let _ = match_key(&rooted, &opts);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            opts in options(),
        ) {
            let path = String::from_utf8_lossy(&bytes);
            let _ = normalize(&path, &opts);
            let _ = match_key(&path, &opts);
        }
    }
}
