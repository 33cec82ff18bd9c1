//! Property tests of normalization against the differential oracle: for any input,
//! either the path is refused, or every common backend reading of the path the
//! upstream would receive lands where the rules think it does.

mod common;

use common::oracle;
use portcullis::path::{EscapedSlashes, PathOptions, normalize};
use proptest::prelude::*;

/// Pieces that have broken path matching somewhere.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2E".to_string()),
        Just("%2f".to_string()),
        Just("%2F".to_string()),
        Just("%5c".to_string()),
        Just("\\".to_string()),
        Just(";".to_string()),
        Just(";x=1".to_string()),
        Just("%3b".to_string()),
        Just("%25".to_string()),
        Just("%252e".to_string()),
        Just("%61".to_string()),
        Just("%41".to_string()),
        Just("admin".to_string()),
        Just("ADMIN".to_string()),
        Just("Admin".to_string()),
        Just("adm".to_string()),
        Just("in".to_string()),
        Just("a".to_string()),
        Just("%20".to_string()),
        Just(" ".to_string()),
        Just("%C0%AE".to_string()),
        Just("%E0%80%AE".to_string()),
        Just("%00".to_string()),
        Just("#".to_string()),
        Just("?".to_string()),
        Just("%3F".to_string()),
        "[a-z]{1,3}".prop_map(|s| s),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 1..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

fn options() -> impl Strategy<Value = PathOptions> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(keep, merge, fold)| PathOptions {
        escaped_slashes: if keep {
            EscapedSlashes::Keep
        } else {
            EscapedSlashes::Reject
        },
        merge_slashes: merge,
        case_insensitive: fold,
    })
}

fn protected_key(key: &str) -> bool {
    oracle::is_protected(key, "/admin")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Whatever a backend makes of the forwarded path, if it is `/admin/**` to the
    /// backend, it was `/admin/**` to the rules.
    #[test]
    fn every_backend_reading_of_a_forwarded_path_agrees_with_the_match_key(input in path(), options in options()) {
        if let Ok(normalized) = normalize(&input, &options) {
            let bypasses = oracle::bypasses(&normalized.forwarded, "/admin", options.case_insensitive);
            prop_assert!(
                bypasses.is_empty() || protected_key(&normalized.key),
                "input {:?} forwarded as {:?} with key {:?}, but read by a backend as {:?}",
                input, normalized.forwarded, normalized.key, bypasses
            );
        }
    }

    /// The forwarded path has nothing left for a backend to reinterpret: no dot
    /// segments, no double encoding, no raw backslash, and (when merging) no empty
    /// segment but a trailing one.
    #[test]
    fn forwarded_paths_are_inert(input in path(), options in options()) {
        if let Ok(normalized) = normalize(&input, &options) {
            let forwarded = &normalized.forwarded;
            let segments: Vec<&str> = forwarded[1..].split('/').collect();
            prop_assert!(segments.iter().all(|s| *s != "." && *s != ".."), "{forwarded}");
            prop_assert!(!forwarded.contains('\\'), "{forwarded}");
            let bytes = forwarded.as_bytes();
            let double = bytes.windows(5).any(|w| w[0] == b'%' && w[1] == b'2' && w[2] == b'5' && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit());
            prop_assert!(!double, "{forwarded}");
            if options.merge_slashes {
                let inner = &segments[..segments.len() - 1];
                prop_assert!(inner.iter().all(|s| !s.is_empty()), "{forwarded}");
            }
        }
    }
}
