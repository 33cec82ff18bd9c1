//! The differential oracle: every way a common backend may read the path it receives.
//!
//! A proxy is bypassed when the upstream reads a path differently from the proxy. So a
//! forwarded target is judged by all the readings below — raw, RFC 3986 dot removal,
//! percent-decoding once and twice, `\` as `/`, merged slashes, `;parameters` stripped
//! before dot removal (Tomcat, Jetty), overlong UTF-8 decoded leniently, ASCII case-fold
//! with trailing dots and spaces stripped (IIS/Windows), and compositions of these — and
//! none may land in the protected area.

/// Percent-decodes every well-formed escape, byte-wise, leaving others as they are.
fn decode_bytes(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&b| hex(b)),
                input.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

fn decode(input: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(input.as_bytes())).into_owned()
}

/// Decodes escapes, then folds overlong UTF-8 encodings of ASCII (`C0 AE`, `E0 80 AE`,
/// `F0 80 80 AE`) into the character, as lenient decoders did (CVE-2000-0884).
fn decode_overlong(input: &str) -> String {
    let bytes = decode_bytes(input.as_bytes());
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let cont = |j: usize| bytes.get(j).is_some_and(|&c| c & 0xC0 == 0x80);
        if (b == 0xC0 || b == 0xC1) && cont(i + 1) {
            out.push(((b & 0x1F) << 6) | (bytes[i + 1] & 0x3F));
            i += 2;
        } else if b == 0xE0 && cont(i + 1) && cont(i + 2) && bytes[i + 1] & 0x20 == 0 {
            let value = ((u32::from(b) & 0x0F) << 12)
                | ((u32::from(bytes[i + 1]) & 0x3F) << 6)
                | (u32::from(bytes[i + 2]) & 0x3F);
            out.push(value as u8);
            i += 3;
        } else if b == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3) && bytes[i + 1] & 0x30 == 0 {
            let value = ((u32::from(bytes[i + 2]) & 0x3F) << 6) | (u32::from(bytes[i + 3]) & 0x3F);
            out.push(value as u8);
            i += 4;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 5.2.4 remove_dot_segments.
fn dots(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    output.push("");
                }
            }
            ".." => {
                output.pop();
                if last {
                    output.push("");
                }
            }
            other => output.push(other),
        }
    }
    format!("/{}", output.join("/"))
}

fn merge(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn backslash(path: &str) -> String {
    path.replace('\\', "/")
}

/// `/a;x=1/b` → `/a/b`: what Tomcat and Jetty do before anything else.
fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

/// ASCII lower case, trailing dots and spaces dropped from each segment (Windows).
fn fold(path: &str) -> String {
    path.to_ascii_lowercase()
        .split('/')
        .map(|segment| segment.trim_end_matches(['.', ' ']))
        .collect::<Vec<_>>()
        .join("/")
}

/// Every reading of a received path (query and fragment already cut off).
pub fn readings(received: &str, case_insensitive: bool) -> Vec<(&'static str, String)> {
    let once = decode(received);
    let twice = decode(&once);
    let overlong = decode_overlong(received);
    let mut all: Vec<(&'static str, String)> = vec![
        ("raw", received.to_string()),
        ("dot removal", dots(received)),
        ("merged slashes", dots(&merge(received))),
        ("decode once", dots(&once)),
        ("decode once, merged", dots(&merge(&once))),
        ("decode once, backslash", dots(&merge(&backslash(&once)))),
        ("decode twice", dots(&twice)),
        ("decode twice, backslash", dots(&merge(&backslash(&twice)))),
        ("params stripped, then dots (Tomcat)", dots(&strip_params(received))),
        ("decode, then params stripped", dots(&merge(&strip_params(&once)))),
        (
            "params stripped, then decode",
            dots(&merge(&decode(&strip_params(received)))),
        ),
        ("overlong UTF-8", dots(&merge(&backslash(&overlong)))),
        (
            "decode twice, params stripped",
            dots(&merge(&strip_params(&backslash(&twice)))),
        ),
    ];
    if case_insensitive {
        let folded: Vec<(&'static str, String)> = all
            .iter()
            .map(|(name, path)| (*name, dots(&merge(&fold(path)))))
            .collect();
        all.extend(folded);
    }
    all
}

/// Whether a reading lands on `/admin` or below it (`/admin/**`).
pub fn is_protected(path: &str, protected: &str) -> bool {
    path == protected || path.starts_with(&format!("{protected}/"))
}

/// The readings of `received` that land on `protected`, for a failure message.
pub fn bypasses(received: &str, protected: &str, case_insensitive: bool) -> Vec<String> {
    let path = received.split(['?', '#']).next().unwrap_or(received);
    readings(path, case_insensitive)
        .into_iter()
        .filter(|(_, reading)| is_protected(reading, protected))
        .map(|(name, reading)| format!("{name}: {reading}"))
        .collect()
}
