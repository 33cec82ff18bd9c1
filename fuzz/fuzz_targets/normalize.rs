//! Fuzzes `portcullis::path::normalize`, the function every access decision
//! depends on.
//!
//! Each input is used twice:
//! 1. all of it (lossily decoded as UTF-8) with the default `PathOptions`;
//! 2. its first byte as options (bit 0: `escaped_slashes = Keep`, bit 1:
//!    `merge_slashes`, bit 2: `case_insensitive`) and the rest as the path.
//!
//! `normalize` must never panic, and whatever it accepts must satisfy the
//! invariants checked in `check_accepted`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::path::{EscapedSlashes, PathOptions, match_key, normalize};

fuzz_target!(|data: &[u8]| {
    let whole = String::from_utf8_lossy(data);
    check(&whole, &PathOptions::default());

    if let Some((&first, rest)) = data.split_first() {
        let options = PathOptions {
            escaped_slashes: if first & 1 != 0 {
                EscapedSlashes::Keep
            } else {
                EscapedSlashes::Reject
            },
            merge_slashes: first & 2 != 0,
            case_insensitive: first & 4 != 0,
        };
        let path = String::from_utf8_lossy(rest);
        check(&path, &options);
    }
});

fn check(path: &str, opts: &PathOptions) {
    // Errors are fine (they become 400s); panics are not.
    if let Ok(normalized) = normalize(path, opts) {
        check_accepted(path, opts, &normalized);
    }
}

fn check_accepted(input: &str, opts: &PathOptions, n: &portcullis::path::NormalizedPath) {
    let forwarded = &n.forwarded;
    let key = &n.key;
    let context = || format!("input {input:?}, options {opts:?}, result {n:?}");

    // Idempotent: no later hop that normalizes the same way can reinterpret it.
    assert_eq!(
        normalize(forwarded, opts).as_ref(),
        Ok(n),
        "normalize is not idempotent: {}",
        context()
    );
    // The key is the key of the forwarded path (the rules judge what is sent).
    assert_eq!(
        match_key(forwarded, opts).as_ref(),
        Ok(key),
        "key differs from match_key(forwarded): {}",
        context()
    );
    // "A key is its own key."
    assert_eq!(
        match_key(key, opts).as_ref(),
        Ok(key),
        "match_key is not idempotent on the key: {}",
        context()
    );

    // The forwarded path is origin-form.
    assert!(
        forwarded.starts_with('/'),
        "forwarded path does not start with '/': {}",
        context()
    );
    // No dot segment survives, in the forwarded path or in the key.
    for (what, text) in [("forwarded path", forwarded), ("key", key)] {
        for segment in text.split('/') {
            assert!(
                segment != "." && segment != "..",
                "{what} has a dot segment {segment:?}: {}",
                context()
            );
        }
        // No control character, raw (ASCII or C1) ...
        assert!(
            !text.chars().any(char::is_control),
            "{what} contains a control character: {}",
            context()
        );
    }
    // ... or escaped (`%00`-`%1F`, `%7F`) in the forwarded path.
    assert!(
        escapes(forwarded).all(|byte| !byte.is_ascii_control()),
        "forwarded path contains an escaped control character: {}",
        context()
    );
    // No double encoding: `%25` followed by two hex digits would be decoded
    // into an escape by a backend that decodes twice.
    let bytes = forwarded.as_bytes();
    for (at, window) in bytes.windows(3).enumerate() {
        if window == b"%25" {
            let next = &bytes[at + 3..];
            assert!(
                !(next.len() >= 2 && next[0].is_ascii_hexdigit() && next[1].is_ascii_hexdigit()),
                "forwarded path contains a double-encoded escape: {}",
                context()
            );
        }
    }
    // The key has its `;parameters` dropped.
    assert!(!key.contains(';'), "key contains ';': {}", context());
    assert!(key.starts_with('/'), "key does not start with '/': {}", context());
    // On case-insensitive routes the key is lower-cased.
    if opts.case_insensitive {
        assert!(
            !key.bytes().any(|byte| byte.is_ascii_uppercase()),
            "case-insensitive key has upper case: {}",
            context()
        );
    }
}

/// The bytes of the well-formed `%XX` escapes in `text`.
fn escapes(text: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = text.as_bytes();
    (0..bytes.len()).filter_map(move |at| match bytes.get(at..at + 3) {
        Some([b'%', high, low]) => {
            let high = (*high as char).to_digit(16)?;
            let low = (*low as char).to_digit(16)?;
            Some((high * 16 + low) as u8)
        }
        _ => None,
    })
}
