//! The htpasswd file behind `[identity.basic]`: parsing it, verifying passwords against it, and caching
//! successful verifications.
//!
//! This module owns everything that touches password hashes, so the rest of the proxy never handles one:
//!
//! - [`Htpasswd::parse`] accepts only bcrypt (`$2y$`, `$2b$`, `$2a$`) and argon2id. Every weaker format Apache's
//!   `htpasswd` can write (APR1-MD5, `{SHA}`, DES/MD5/SHA crypt, plain text) is refused at load time with the
//!   line and the command that fixes it, because a file that silently keeps weak hashes is worse than one that
//!   does not load. All problems are reported at once so an operator fixes the file in one pass.
//! - [`verify`] is blocking and deliberately slow (that is the point of bcrypt and argon2); the caller runs it
//!   off the async workers. An unknown user costs about as much as a known one so timing does not reveal
//!   which users exist.
//! - [`VerifiedCache`] remembers successful verifications for a short time so keep-alive clients that resend
//!   the same credentials on every request do not pay for a bcrypt each time. It stores only keyed hashes
//!   bound to the exact htpasswd line, never a password, and it is bounded and expiring.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The fix every refused or broken hash points to: bcrypt at a cost `check` does not warn about.
const REGENERATE: &str = "htpasswd -B -C 10 FILE";

/// Lowest and highest cost the bcrypt crate verifies; anything else would fail on every login, so it is a
/// parse error instead.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// What [`verify`] checks an unknown user's password against, so that a miss costs as much as a bcrypt
/// cost-10 hit. It is a constant rather than computed at start-up so the first unknown-user request is not
/// slower than the next ones (which would itself be a timing signal) and nothing can fail at run time; the
/// `dummy_hash_is_a_valid_cost_10_bcrypt_hash` test guards it. Its password is irrelevant: a miss returns
/// false whatever the outcome.
const DUMMY_BCRYPT_HASH: &str = "$2b$10$BAMwrGkK78iHjI6zZxZv9.492zA5QK1XX1suydnhrKSNrzkzCm5vy";

/// One parse problem: 1-based line and column in the htpasswd file, and the message.
///
/// Positions let the config loader point the operator at the exact spot: `column` counts characters and is 1
/// for problems with the line or the user name, otherwise where the hash (or its trailing whitespace) begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdError {
    /// 1-based line number, as an editor shows it.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and, where there is one, the command that fixes it.
    pub message: String,
}

impl fmt::Display for HtpasswdError {
    /// `line L, column C: message`, ready for the config loader to prefix with the file name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for HtpasswdError {}

/// Which accepted scheme a stored hash uses, with the parameter `check` cares about.
///
/// Only the strong schemes exist here: a weak one never makes it past [`Htpasswd::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredHash {
    /// bcrypt (`$2y$`, `$2b$` or `$2a$`); `check` warns when `cost` is below 10.
    Bcrypt {
        /// The log2 work factor; `htpasswd -B` without `-C` gives 5.
        cost: u32,
    },
    /// argon2id in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    Argon2id,
}

/// One user's line of the file.
///
/// It keeps the hash private so nothing outside this module can log or compare it; the line number serves
/// diagnostics and the line digest ties cache entries to this exact line.
#[derive(Clone)]
pub struct Entry {
    hash: String,
    kind: StoredHash,
    line: usize,
    line_digest: [u8; 32],
}

impl Entry {
    /// 1-based line in the file, so `check` and logs can point at it.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Which scheme the hash uses, so `check` can report it.
    pub fn kind(&self) -> StoredHash {
        self.kind
    }

    /// The bcrypt cost, or `None` for argon2id; `check` warns below 10.
    pub fn bcrypt_cost(&self) -> Option<u32> {
        match self.kind {
            StoredHash::Bcrypt { cost } => Some(cost),
            StoredHash::Argon2id => None,
        }
    }

    /// SHA-256 of the whole `user:hash` line (without line ending), so a cached verification stops
    /// matching as soon as the line changes or disappears on reload.
    pub fn line_digest(&self) -> &[u8; 32] {
        &self.line_digest
    }
}

impl fmt::Debug for Entry {
    /// Leaves the hash out: a hash in a log is an offline cracking target.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("kind", &self.kind)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// A parsed htpasswd file: users in file order with a by-name index.
///
/// It is immutable; a reload parses a new one and swaps it in, so a broken file never replaces a good one.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    entries: Vec<(String, Entry)>,
    index: HashMap<String, usize>,
}

impl Htpasswd {
    /// Parses the file's text, returning every problem (in line order) rather than the first, so one edit
    /// fixes them all. Blank lines and lines starting with `#` are skipped; a trailing `\r` is tolerated.
    pub fn parse(text: &str) -> Result<Htpasswd, Vec<HtpasswdError>> {
        let mut parsed = Htpasswd::default();
        let mut errors = Vec::new();
        // First line of every user name, valid or not, so a repeated name is reported even when its first
        // line was refused too.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (number, raw) in (1..).zip(text.split('\n')) {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |column: usize, message: String| HtpasswdError {
                line: number,
                column,
                message,
            };
            let Some((user, hash)) = line.split_once(':') else {
                errors.push(error(1, "expected `user:hash`, but the line has no ':'".to_owned()));
                continue;
            };
            if user.is_empty() {
                errors.push(error(1, "empty user name before ':'".to_owned()));
                continue;
            }
            match seen.entry(user) {
                MapEntry::Occupied(first) => {
                    let message = format!("duplicate user {user:?} (first defined on line {})", first.get());
                    errors.push(error(1, message));
                    continue;
                }
                MapEntry::Vacant(slot) => {
                    slot.insert(number);
                }
            }
            let hash_column = user.chars().count() + 2;
            match classify(user, hash) {
                Ok(kind) => {
                    let entry = Entry {
                        hash: hash.to_owned(),
                        kind,
                        line: number,
                        line_digest: Sha256::digest(line.as_bytes()).into(),
                    };
                    parsed.index.insert(user.to_owned(), parsed.entries.len());
                    parsed.entries.push((user.to_owned(), entry));
                }
                Err((offset, message)) => errors.push(error(hash_column + offset, message)),
            }
        }
        if errors.is_empty() { Ok(parsed) } else { Err(errors) }
    }

    /// The entry for `user`, if the file has one; `None` should still go to [`verify`] to keep timing flat.
    pub fn get(&self, user: &str) -> Option<&Entry> {
        self.index.get(user).map(|&i| &self.entries[i].1)
    }

    /// Users and their entries in file order, so `check` reports them the way the operator reads the file.
    pub fn users(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(user, entry)| (user.as_str(), entry))
    }

    /// Number of users, for `check` and start-up logs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file defines no user, which the config loader may want to flag.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Decides whether `hash` is an accepted, well-formed hash. On refusal returns the character offset within
/// the hash of the problem (0 unless it is trailing whitespace) and the message.
fn classify(user: &str, hash: &str) -> Result<StoredHash, (usize, String)> {
    // Every refusal names the problem and ends with the same fix: bcrypt at a cost `check` accepts.
    let refuse = |problem: String| -> Result<StoredHash, (usize, String)> {
        let fix = format!("{REGENERATE} {}", shell_word(user));
        Err((0, format!("user {user:?} has {problem}; regenerate it with: {fix}")))
    };

    if hash.is_empty() {
        return refuse("an empty hash".to_owned());
    }
    let trimmed = hash.trim_end();
    if trimmed.len() != hash.len() {
        let offset = trimmed.chars().count();
        return Err((offset, format!("trailing whitespace after the hash of user {user:?}")));
    }
    if ["$2y$", "$2b$", "$2a$"].iter().any(|prefix| hash.starts_with(prefix)) {
        return match bcrypt_cost(hash) {
            Ok(cost) => Ok(StoredHash::Bcrypt { cost }),
            Err(why) => refuse(format!("a malformed bcrypt hash ({why})")),
        };
    }
    if hash.starts_with("$argon2id$") {
        return match check_argon2id(hash) {
            Ok(()) => Ok(StoredHash::Argon2id),
            Err(why) => refuse(format!("a malformed argon2id hash ({why})")),
        };
    }
    if let Some(variant) = ["argon2i", "argon2d"]
        .iter()
        .find(|v| hash.starts_with(&format!("${v}$")))
    {
        return refuse(format!(
            "an {variant} hash, but argon2id is the only argon2 variant accepted (rehash the password with \
             argon2id, or use bcrypt)"
        ));
    }
    if hash.starts_with("$2x$") {
        return refuse("a `$2x$` bcrypt hash, the marker of hashes made by a buggy bcrypt implementation".to_owned());
    }
    let weak = [
        ("$apr1$", "an APR1-MD5 (`$apr1$`) hash"),
        ("{SHA}", "an unsalted SHA-1 (`{SHA}`) hash"),
        ("$1$", "an MD5-crypt (`$1$`) hash"),
        ("$5$", "a SHA-256-crypt (`$5$`) hash"),
        ("$6$", "a SHA-512-crypt (`$6$`) hash"),
    ];
    if let Some((_, what)) = weak.iter().find(|(prefix, _)| hash.starts_with(prefix)) {
        return refuse(format!("{what}, which is too weak to accept"));
    }
    if let Some(rest) = hash.strip_prefix('$') {
        let scheme = rest.split('$').next().unwrap_or(rest);
        return refuse(format!(
            "an unsupported `${scheme}$` hash (only bcrypt and argon2id are accepted)"
        ));
    }
    // What `htpasswd -d` writes: 2 salt and 11 hash characters from crypt's alphabet, no prefix.
    let des_alphabet = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
    let what = if hash.len() == 13 && hash.chars().all(des_alphabet) {
        "a traditional DES crypt hash"
    } else {
        "a plain-text password"
    };
    refuse(format!("{what}, which is too weak to accept"))
}

/// Validates a bcrypt hash the way `bcrypt::verify` will read it, and returns its cost.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e: bcrypt::BcryptError| e.to_string())?;
    let cost = parts.get_cost();
    if !BCRYPT_COSTS.contains(&cost) {
        return Err(format!(
            "cost {cost} is outside {}..={}",
            BCRYPT_COSTS.start(),
            BCRYPT_COSTS.end()
        ));
    }
    Ok(cost)
}

/// Validates an argon2id PHC string the way [`verify`] will use it: fields, version and parameters.
fn check_argon2id(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("missing salt or hash".to_owned());
    }
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version).map_err(|e| format!("version {version}: {e}"))?;
    }
    argon2::Params::try_from(&parsed).map_err(|e| e.to_string())?;
    Ok(())
}

/// `user` as one shell word, so the suggested `htpasswd` command can be pasted as it is.
fn shell_word(user: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if user.chars().all(plain) {
        user.to_owned()
    } else {
        format!("'{}'", user.replace('\'', r"'\''"))
    }
}

/// Blocking: whether `password` matches `entry`; with `None`, burns a dummy bcrypt verification and returns
/// false.
///
/// Taking `Option` makes the constant-cost miss the only way to handle an unknown user, so callers cannot
/// short-circuit it and leak which users exist through response timing. Costs tens of milliseconds or more:
/// run it on a blocking thread.
pub fn verify(entry: Option<&Entry>, password: &str) -> bool {
    let Some(entry) = entry else {
        // Only the time spent matters; the result is thrown away.
        let _ = bcrypt::verify(password, DUMMY_BCRYPT_HASH);
        return false;
    };
    // Entries only come from `Htpasswd::parse`, which already checked that these hashes are usable; the
    // libraries compare the computed hash in constant time.
    match entry.kind {
        StoredHash::Bcrypt { .. } => bcrypt::verify(password, &entry.hash).unwrap_or(false),
        StoredHash::Argon2id => PasswordHash::new(&entry.hash)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()),
    }
}

/// Cache of successful verifications, so keep-alive clients sending the same credentials on every request
/// pay for one bcrypt per `ttl` rather than one per request.
///
/// A key is an HMAC under a random per-process key of the user, their line's digest and the password:
/// the plaintext is never stored, a stolen key set cannot be brute-forced offline without the process key,
/// and an entry stops matching when the user's line changes or disappears. The cache is bounded
/// (`capacity`) and entries expire `ttl` after insertion, even if used meanwhile.
///
/// Lookups go through the map's ordinary equality, not a constant-time one: the keys are HMAC outputs
/// under a secret key, which an attacker can neither choose nor predict, so timing reveals nothing.
pub struct VerifiedCache {
    mac: Hmac<Sha256>,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    capacity: usize,
    ttl: Duration,
}

impl VerifiedCache {
    /// A cache holding at most `capacity` keys (0 disables it), each valid for `ttl` after insertion, with a
    /// fresh random 32-byte HMAC key so keys from another process or an earlier run never match.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
        VerifiedCache {
            mac,
            entries: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// HMAC-SHA256(process key, user ‖ 0x00 ‖ line_digest ‖ 0x00 ‖ password): the cache key.
    ///
    /// Binding the line digest means a reload that changes or removes the user's line invalidates their
    /// cached verifications without any explicit flush.
    pub fn key(&self, user: &str, entry: &Entry, password: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(entry.line_digest());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `key` was verified less than `ttl` before `now`; an expired key is dropped. `now` is a
    /// parameter so callers take the clock once per request and tests need no sleeping.
    pub fn contains(&self, key: &[u8; 32], now: Instant) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(&inserted) if now.saturating_duration_since(inserted) < self.ttl => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Records a successful verification at `now`. When full, it first drops expired keys and then, if still
    /// full, the oldest one, so the cache never grows past `capacity`.
    pub fn insert(&self, key: [u8; 32], now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if let MapEntry::Occupied(mut existing) = entries.entry(key) {
            existing.insert(now);
            return;
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, inserted| now.saturating_duration_since(*inserted) < self.ttl);
        }
        if entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, inserted)| **inserted)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, now);
    }

    /// Keys currently held, expired ones not yet dropped included; for metrics and tests.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The map, even after a panic elsewhere poisoned the lock: every operation leaves it consistent, and an
    /// authentication path must not start panicking because of an unrelated one.
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for VerifiedCache {
    /// Leaves out the HMAC key and the keys themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text of a fixture under `tests/fixtures/identity/` (made by Apache `htpasswd`, see its README.md).
    macro_rules! fixture {
        ($name:literal) => {
            std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/identity/",
                $name
            ))
            .expect(concat!("read fixture ", $name))
        };
    }

    fn parse_ok(text: &str) -> Htpasswd {
        Htpasswd::parse(text).expect("fixture parses")
    }

    fn parse_err(text: &str) -> Vec<HtpasswdError> {
        Htpasswd::parse(text).expect_err("parse must fail")
    }

    /// The hash part of `user`'s line in `text`, to build new files from real hashes without pinning bytes.
    fn hash_of<'a>(text: &'a str, user: &str) -> &'a str {
        text.lines()
            .find_map(|line| line.strip_prefix(user)?.strip_prefix(':'))
            .expect("user in fixture")
    }

    fn all_fixture_users() -> Vec<(Htpasswd, &'static str)> {
        vec![
            (parse_ok(&fixture!("users-cost10.htpasswd")), "alice"),
            (parse_ok(&fixture!("users-cost10.htpasswd")), "bob"),
            (parse_ok(&fixture!("users-cost10.htpasswd")), "carol"),
            (parse_ok(&fixture!("users-cost5.htpasswd")), "dave"),
            (parse_ok(&fixture!("bcrypt-variants.htpasswd")), "erin"),
            (parse_ok(&fixture!("bcrypt-variants.htpasswd")), "frank"),
            (parse_ok(&fixture!("bcrypt-variants.htpasswd")), "grace"),
        ]
    }

    fn assert_weak_fixture_refused(text: &str, format_name: &str) {
        let errors = parse_err(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (1, 6), "{errors:?}");
        assert!(errors[0].message.contains(format_name), "{}", errors[0].message);
        assert!(
            errors[0].message.contains("htpasswd -B -C 10 FILE weak"),
            "{}",
            errors[0].message
        );
    }

    fn single_error(text: &str) -> HtpasswdError {
        let errors = parse_err(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].clone()
    }

    // --- parsing and verification against the Apache-made fixtures ---

    #[test]
    fn right_password_verifies_for_every_user_and_bcrypt_variant() {
        for (file, user) in all_fixture_users() {
            assert!(verify(file.get(user), &format!("{user}-password")), "{user}");
        }
    }

    #[test]
    fn wrong_password_is_rejected_for_every_user_and_bcrypt_variant() {
        for (file, user) in all_fixture_users() {
            assert!(!verify(file.get(user), &format!("{user}-passwore")), "{user}");
        }
    }

    #[test]
    fn unknown_user_is_rejected_after_a_dummy_verification() {
        let file = parse_ok(&fixture!("users-cost5.htpasswd"));
        assert!(file.get("mallory").is_none());
        assert!(!verify(file.get("mallory"), "dave-password"));
    }

    #[test]
    fn dummy_hash_is_a_valid_cost_10_bcrypt_hash() {
        let file = parse_ok(&format!("dummy:{DUMMY_BCRYPT_HASH}"));
        assert_eq!(file.get("dummy").and_then(Entry::bcrypt_cost), Some(10));
    }

    #[test]
    fn bcrypt_cost_is_read_and_argon2id_has_none() {
        let cost10 = parse_ok(&fixture!("users-cost10.htpasswd"));
        let cost5 = parse_ok(&fixture!("users-cost5.htpasswd"));
        assert_eq!(cost10.get("alice").and_then(Entry::bcrypt_cost), Some(10));
        assert_eq!(
            cost10.get("bob").map(Entry::kind),
            Some(StoredHash::Bcrypt { cost: 10 })
        );
        assert_eq!(cost5.get("dave").and_then(Entry::bcrypt_cost), Some(5));
        assert_eq!(cost10.get("carol").map(Entry::kind), Some(StoredHash::Argon2id));
        assert_eq!(cost10.get("carol").and_then(Entry::bcrypt_cost), None);
    }

    #[test]
    fn all_bcrypt_prefixes_parse_at_cost_5() {
        let file = parse_ok(&fixture!("bcrypt-variants.htpasswd"));
        for user in ["erin", "frank", "grace"] {
            assert_eq!(file.get(user).and_then(Entry::bcrypt_cost), Some(5), "{user}");
        }
    }

    #[test]
    fn users_are_listed_in_file_order_with_their_lines() {
        let file = parse_ok(&fixture!("users-cost10.htpasswd"));
        let users: Vec<(&str, usize)> = file.users().map(|(user, entry)| (user, entry.line())).collect();
        assert_eq!(users, [("alice", 1), ("bob", 2), ("carol", 3)]);
        assert_eq!(file.len(), 3);
        assert!(!file.is_empty());
        assert!(parse_ok("").is_empty());
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_tolerated() {
        let dave = fixture!("users-cost5.htpasswd");
        let text = format!("# portcullis users\r\n\r\n   \n{}\r\n# end\n", dave.trim_end());
        let file = parse_ok(&text);
        assert_eq!(file.len(), 1);
        assert_eq!(file.get("dave").map(Entry::line), Some(4));
        assert!(verify(file.get("dave"), "dave-password"));
    }

    #[test]
    fn line_digest_is_sha256_of_the_line_without_its_ending() {
        let dave = fixture!("users-cost5.htpasswd");
        let line = dave.trim_end();
        let expected: [u8; 32] = Sha256::digest(line.as_bytes()).into();
        let lf = parse_ok(&dave);
        let crlf = parse_ok(&format!("{line}\r\n"));
        assert_eq!(lf.get("dave").map(Entry::line_digest), Some(&expected));
        assert_eq!(crlf.get("dave").map(Entry::line_digest), Some(&expected));
    }

    #[test]
    fn entry_debug_output_leaves_the_hash_out() {
        let dave = fixture!("users-cost5.htpasswd");
        let debug = format!("{:?}", parse_ok(&dave));
        assert!(debug.contains("Bcrypt"), "{debug}");
        assert!(!debug.contains(hash_of(&dave, "dave")), "{debug}");
    }

    // --- refused formats and malformed lines ---

    #[test]
    fn apr1_md5_fixture_is_refused_at_line_1() {
        assert_weak_fixture_refused(&fixture!("weak-md5.htpasswd"), "APR1-MD5 (`$apr1$`)");
    }

    #[test]
    fn sha1_fixture_is_refused_at_line_1() {
        assert_weak_fixture_refused(&fixture!("weak-sha.htpasswd"), "SHA-1 (`{SHA}`)");
    }

    #[test]
    fn des_crypt_fixture_is_refused_at_line_1() {
        assert_weak_fixture_refused(&fixture!("weak-crypt.htpasswd"), "traditional DES crypt");
    }

    #[test]
    fn plain_text_fixture_is_refused_at_line_1() {
        assert_weak_fixture_refused(&fixture!("weak-plain.htpasswd"), "plain-text password");
    }

    #[test]
    fn md5_sha256_and_sha512_crypt_are_refused_by_name() {
        let errors = parse_err("a:$1$salt$hash\nb:$5$salt$hash\nc:$6$rounds=5000$salt$hash\n");
        let found: Vec<(usize, bool)> = errors
            .iter()
            .map(|e| (e.line, e.message.contains(REGENERATE)))
            .collect();
        assert_eq!(found, [(1, true), (2, true), (3, true)]);
        assert!(errors[0].message.contains("MD5-crypt (`$1$`)"), "{}", errors[0].message);
        assert!(
            errors[1].message.contains("SHA-256-crypt (`$5$`)"),
            "{}",
            errors[1].message
        );
        assert!(
            errors[2].message.contains("SHA-512-crypt (`$6$`)"),
            "{}",
            errors[2].message
        );
    }

    #[test]
    fn unknown_dollar_scheme_is_refused_by_name() {
        let error = single_error("yann:$y$j9T$salt$hash");
        assert!(error.message.contains("unsupported `$y$` hash"), "{}", error.message);
        assert!(error.message.contains(REGENERATE), "{}", error.message);
    }

    #[test]
    fn argon2i_and_argon2d_are_refused_naming_the_variant() {
        let cost10 = fixture!("users-cost10.htpasswd");
        let carol = hash_of(&cost10, "carol");
        let argon2i = carol.replacen("$argon2id$", "$argon2i$", 1);
        let argon2d = carol.replacen("$argon2id$", "$argon2d$", 1);
        let errors = parse_err(&format!("ivan:{argon2i}\ndora:{argon2d}\n"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("argon2i hash"), "{}", errors[0].message);
        assert!(errors[1].message.contains("argon2d hash"), "{}", errors[1].message);
        let use_argon2id = "argon2id is the only argon2 variant accepted";
        assert!(errors.iter().all(|e| e.message.contains(use_argon2id)), "{errors:?}");
    }

    #[test]
    fn malformed_bcrypt_hash_is_refused() {
        let error = single_error("alice:$2y$10$tooshort");
        assert_eq!((error.line, error.column), (1, 7));
        assert!(error.message.contains("malformed bcrypt hash"), "{}", error.message);
    }

    #[test]
    fn bcrypt_cost_outside_4_to_31_is_refused() {
        let dave = fixture!("users-cost5.htpasswd");
        let hash = hash_of(&dave, "dave").replacen("$05$", "$99$", 1);
        let error = single_error(&format!("dave:{hash}"));
        assert!(error.message.contains("cost 99 is outside 4..=31"), "{}", error.message);
    }

    #[test]
    fn bcrypt_2x_prefix_is_refused() {
        let dave = fixture!("users-cost5.htpasswd");
        let hash = hash_of(&dave, "dave").replacen("$2y$", "$2x$", 1);
        let error = single_error(&format!("dave:{hash}"));
        assert!(error.message.contains("`$2x$`"), "{}", error.message);
    }

    #[test]
    fn malformed_argon2id_hash_is_refused() {
        let cost10 = fixture!("users-cost10.htpasswd");
        let carol = hash_of(&cost10, "carol");
        let no_output = &carol[..carol.rfind('$').expect("PHC string has fields")];
        let bad_param = carol.replacen("t=3", "t=0", 1);
        let errors = parse_err(&format!(
            "carol:{no_output}\ncarl:$argon2id$garbage\nkarol:{bad_param}\n"
        ));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3]);
        assert!(
            errors.iter().all(|e| e.message.contains("malformed argon2id hash")),
            "{errors:?}"
        );
    }

    #[test]
    fn line_without_colon_is_an_error() {
        let error = single_error("alice\n");
        assert_eq!((error.line, error.column), (1, 1));
        assert!(error.message.contains("no ':'"), "{}", error.message);
    }

    #[test]
    fn empty_user_name_is_an_error() {
        let dave = fixture!("users-cost5.htpasswd");
        let error = single_error(&format!(":{}", hash_of(&dave, "dave")));
        assert_eq!((error.line, error.column), (1, 1));
        assert!(error.message.contains("empty user name"), "{}", error.message);
    }

    #[test]
    fn empty_hash_is_an_error() {
        let error = single_error("alice:");
        assert!(error.message.contains("empty hash"), "{}", error.message);
    }

    #[test]
    fn trailing_whitespace_after_the_hash_is_an_error_at_its_column() {
        let dave = fixture!("users-cost5.htpasswd");
        let error = single_error(&format!("dave:{} \n", hash_of(&dave, "dave")));
        assert_eq!(error.column, "dave:".len() + 60 + 1);
        assert!(error.message.contains("trailing whitespace"), "{}", error.message);
    }

    #[test]
    fn duplicate_user_is_an_error_at_the_second_line() {
        let dave = fixture!("users-cost5.htpasswd");
        let line = dave.trim_end();
        let error = single_error(&format!("{line}\n# again\n{line}\n"));
        assert_eq!((error.line, error.column), (3, 1));
        assert!(
            error
                .message
                .contains("duplicate user \"dave\" (first defined on line 1)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn all_errors_are_reported_in_one_parse_in_line_order() {
        let weak = fixture!("weak-md5.htpasswd");
        let text = format!(
            "no-colon\n:empty-user\n{}\n# fine\nx:$2y$10$bad\n{}",
            weak.trim_end(),
            weak
        );
        let errors = parse_err(&text);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 5, 6], "{errors:?}");
        assert!(
            errors[4].message.contains("duplicate user \"weak\""),
            "{}",
            errors[4].message
        );
    }

    #[test]
    fn regenerate_command_quotes_an_unusual_user_name() {
        let error = single_error("o'neil smith:secret");
        assert!(
            error.message.ends_with(r"htpasswd -B -C 10 FILE 'o'\''neil smith'"),
            "{}",
            error.message
        );
    }

    #[test]
    fn error_display_names_line_and_column() {
        let error = HtpasswdError {
            line: 3,
            column: 7,
            message: "bad".to_owned(),
        };
        assert_eq!(error.to_string(), "line 3, column 7: bad");
    }

    // --- cache of successful verifications ---

    /// Two entries for dave that differ only in their line (real cost-5 hashes from the fixtures).
    fn two_dave_lines() -> (Entry, Entry) {
        let dave = fixture!("users-cost5.htpasswd");
        let variants = fixture!("bcrypt-variants.htpasswd");
        let first = parse_ok(&dave).get("dave").cloned().expect("dave");
        let second = parse_ok(&format!("dave:{}", hash_of(&variants, "erin")));
        (first, second.get("dave").cloned().expect("dave"))
    }

    #[test]
    fn cache_key_changes_with_the_user() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let (entry, _) = two_dave_lines();
        assert_ne!(cache.key("dave", &entry, "pw"), cache.key("erin", &entry, "pw"));
    }

    #[test]
    fn cache_key_changes_with_the_line_digest() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let (before, after) = two_dave_lines();
        assert_ne!(before.line_digest(), after.line_digest());
        assert_ne!(cache.key("dave", &before, "pw"), cache.key("dave", &after, "pw"));
    }

    #[test]
    fn cache_key_changes_with_the_password() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let (entry, _) = two_dave_lines();
        assert_ne!(cache.key("dave", &entry, "pw"), cache.key("dave", &entry, "pw2"));
        assert_eq!(cache.key("dave", &entry, "pw"), cache.key("dave", &entry, "pw"));
    }

    #[test]
    fn cache_keys_differ_between_processes() {
        let (entry, _) = two_dave_lines();
        let one = VerifiedCache::new(8, Duration::from_secs(60));
        let other = VerifiedCache::new(8, Duration::from_secs(60));
        assert_ne!(one.key("dave", &entry, "pw"), other.key("dave", &entry, "pw"));
    }

    #[test]
    fn cache_key_is_not_derived_from_the_password_alone() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let (entry, _) = two_dave_lines();
        let key = cache.key("dave", &entry, "dave-password");
        assert_ne!(key, cache.key("erin", &entry, "dave-password"));
        let bare: [u8; 32] = Sha256::digest(b"dave-password").into();
        assert_ne!(key, bare);
        let password = b"dave-password";
        assert!(!key.windows(password.len()).any(|w| w == password));
    }

    #[test]
    fn cache_holds_a_key_until_its_ttl() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.insert([1; 32], t0);
        assert!(cache.contains(&[1; 32], t0 + Duration::from_secs(59)));
        assert!(!cache.contains(&[2; 32], t0));
    }

    #[test]
    fn cache_drops_an_expired_key_on_lookup() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.insert([1; 32], t0);
        assert!(!cache.contains(&[1; 32], t0 + Duration::from_secs(60)));
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_lookups_do_not_extend_the_ttl() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.insert([1; 32], t0);
        assert!(cache.contains(&[1; 32], t0 + Duration::from_secs(50)));
        assert!(!cache.contains(&[1; 32], t0 + Duration::from_secs(70)));
    }

    #[test]
    fn cache_is_bounded_and_evicts_the_oldest_key() {
        let cache = VerifiedCache::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..5u8 {
            cache.insert([i; 32], t0 + Duration::from_secs(u64::from(i)));
        }
        let now = t0 + Duration::from_secs(5);
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(&[0; 32], now));
        assert!(!cache.contains(&[1; 32], now));
        assert!((2..5u8).all(|i| cache.contains(&[i; 32], now)));
    }

    #[test]
    fn cache_evicts_expired_keys_before_the_oldest_live_one() {
        let cache = VerifiedCache::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        cache.insert([0; 32], t0);
        cache.insert([1; 32], t0 + Duration::from_secs(1));
        cache.insert([2; 32], t0 + Duration::from_secs(15));
        cache.insert([3; 32], t0 + Duration::from_secs(16));
        // At 16 s, keys 0 and 1 are expired: both go, and the oldest live key (2) stays.
        assert_eq!(cache.len(), 2);
        assert!(cache.contains(&[2; 32], t0 + Duration::from_secs(16)));
    }

    #[test]
    fn cache_reinsert_refreshes_instead_of_evicting() {
        let cache = VerifiedCache::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.insert([0; 32], t0);
        cache.insert([1; 32], t0);
        cache.insert([0; 32], t0 + Duration::from_secs(30));
        assert_eq!(cache.len(), 2);
        assert!(cache.contains(&[0; 32], t0 + Duration::from_secs(80)));
    }

    #[test]
    fn cache_with_zero_capacity_stores_nothing() {
        let cache = VerifiedCache::new(0, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.insert([1; 32], t0);
        assert!(!cache.contains(&[1; 32], t0));
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_keeps_working_after_its_lock_is_poisoned() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.insert([1; 32], t0);
        let poisoner = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = cache.entries.lock();
                    panic!("poison the cache lock on purpose");
                })
                .join()
        });
        assert!(poisoner.is_err());
        assert!(cache.entries.is_poisoned());
        assert!(cache.contains(&[1; 32], t0));
        cache.insert([2; 32], t0);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn cache_debug_output_leaves_keys_out() {
        let cache = VerifiedCache::new(8, Duration::from_secs(60));
        cache.insert([0xab; 32], Instant::now());
        let debug = format!("{cache:?}");
        assert!(debug.contains("len: 1"), "{debug}");
        assert!(!debug.contains("171"), "{debug}");
    }
}
