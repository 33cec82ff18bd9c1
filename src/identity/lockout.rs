//! Lockout table for `[identity.lockout]`: slows down credential guessing.
//!
//! This module owns the memory of recent *failed* authentication attempts (wrong Basic password or user,
//! unknown API key, bad JWT signature) and the bans they lead to. Without it, an attacker can try passwords or
//! keys as fast as the proxy answers; with it, `failures` failed attempts within `window` ban the client for
//! `ban`, during which the caller answers 429 with `Retry-After` and does not verify credentials at all.
//!
//! Design decisions:
//! - **Client key.** An IPv4 address, or for IPv6 the /64 network: a single host usually controls a whole /64
//!   and could otherwise rotate addresses to dodge the count. Addresses are canonicalised first
//!   ([`IpAddr::to_canonical`]), so an IPv4-mapped `::ffff:a.b.c.d` is the IPv4 address, while `::1` stays IPv6
//!   (`to_ipv4` would wrongly turn it into `0.0.0.1`).
//! - **User key** (`per_user`). Failures are also counted under the Basic user name, whoever guesses it, so a
//!   distributed guess at `admin` from many addresses bans `admin`. The name is stored only as a 64-bit SipHash
//!   keyed with a per-table random key: every entry has the same small size whatever the attacker sends, no
//!   user names (which may be mistyped passwords) linger in memory or debug output, and collisions cannot be
//!   steered (accidental ones, about 1 in 10^9 at 100 000 entries, can only ban, never unban).
//! - **Sliding window.** Each key keeps the timestamps of its failures younger than `window` (a failure exactly
//!   `window` old has left it), at most `failures - 1` of them: the `failures`-th one starts the ban and clears
//!   them, so after the ban the key starts from zero. A running ban is never extended by more failures.
//! - **Memory bound and eviction order.** At most `max_entries` keys are held. When a new key would exceed the
//!   bound, the entries **inserted first** are evicted (FIFO by first insertion, not by last update), whether
//!   they are counting or banned. Insertion order cannot be refreshed by the attacker's own failures, and an
//!   evicted key merely starts from zero: the table only ever *adds* refusals, so the caller never skips
//!   verification because of it, and a ban is honoured for as long as its entry is present. Entries whose ban
//!   expired and that have no failures left are dropped when next looked at.
//! - **Time is injected** (`now: Instant` on every call) so behaviour is testable without sleeping. Time going
//!   backwards between concurrent callers is tolerated (saturating arithmetic, never a panic).
//! - **Locking.** One `std::sync::Mutex` around the table. It is only taken for requests that present
//!   credentials (and not while verifying them), critical sections are a hash lookup plus at most `failures`
//!   timestamps, so it is almost always uncontended (about 20 ns) and a sharded or lock-free map would add
//!   complexity for nothing. A poisoned mutex is recovered (`PoisonError::into_inner`) rather than propagated:
//!   every mutation leaves the table consistent, and the worst outcome of a stale entry is one ban too few or
//!   too many, never a panic on the request path.
//!
//! Settings are passed on every call instead of being stored, so one table outlives config reloads and a
//! reload that changes the limits takes effect on the next request.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Settings from `[identity.lockout]`.
///
/// Kept as a plain copyable value, separate from the table, so a config reload can swap it without losing the
/// failures and bans already recorded. `failures == 0` or `max_entries == 0` records nothing (no bans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failed attempts within `window` that ban a key; also the per-key memory bound (timestamps kept).
    pub failures: u32,
    /// Length of the sliding window in which `failures` failed attempts must fall to cause a ban.
    pub window: Duration,
    /// How long a ban lasts; fixed when it starts and not extended by further failures.
    pub ban: Duration,
    /// Whether to also count failures under, and ban, the Basic user name regardless of the client address.
    pub per_user: bool,
    /// Maximum number of keys held, so an attacker with many addresses cannot exhaust memory.
    pub max_entries: usize,
}

/// The lockout table; it outlives config reloads (settings are passed per call so a reload can change them).
///
/// Shared by all request handlers through `&self`; see the module documentation for the locking rationale.
#[derive(Debug, Default)]
pub struct Lockout {
    /// Keyed hash for Basic user names, random per table so collisions cannot be chosen by an attacker.
    user_hasher: RandomState,
    /// The entries themselves, behind the one lock.
    table: Mutex<Table>,
}

/// What failures and bans are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// An IPv4 client address.
    V4(u32),
    /// The upper 64 bits of an IPv6 client address (its /64 network).
    V6Net(u64),
    /// A keyed hash of a Basic user name (`per_user`).
    User(u64),
}

impl Key {
    /// The key for a client address: the IPv4 address (also when IPv4-mapped) or the IPv6 /64.
    fn client(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => Key::V4(u32::from(v4)),
            IpAddr::V6(v6) => Key::V6Net((u128::from(v6) >> 64) as u64),
        }
    }
}

/// A running (or expired, until next looked at) ban.
#[derive(Debug, Clone, Copy)]
struct Ban {
    /// When the ban started.
    since: Instant,
    /// The `ban` setting at that time; stored as a length so no `Instant` addition can overflow.
    length: Duration,
}

impl Ban {
    /// Time left at `now`, or `None` once the ban is over.
    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.length
            .checked_sub(now.saturating_duration_since(self.since))
            .filter(|left| !left.is_zero())
    }
}

/// State of one key. Invariant: while `ban` is set, `failures` is empty.
#[derive(Debug)]
struct Entry {
    /// Insertion sequence number; the key into [`Table::order`].
    inserted: u64,
    /// Timestamps of failures still inside the window; fewer than `failures` of them.
    failures: VecDeque<Instant>,
    /// The current ban, if any.
    ban: Option<Ban>,
}

impl Entry {
    /// Ends an expired ban and forgets failures that left the window; returns the remaining ban, if any.
    fn refresh(&mut self, window: Duration, now: Instant) -> Option<Duration> {
        if let Some(ban) = self.ban {
            if let Some(left) = ban.remaining(now) {
                return Some(left);
            }
            self.ban = None;
        }
        self.failures.retain(|&at| now.saturating_duration_since(at) < window);
        None
    }

    /// Whether the entry holds nothing worth keeping (after [`Entry::refresh`]).
    fn is_idle(&self) -> bool {
        self.ban.is_none() && self.failures.is_empty()
    }

    /// Records one failure; returns whether it started a ban. Failures during a running ban are ignored.
    fn fail(&mut self, settings: &LockoutSettings, now: Instant) -> bool {
        if self.refresh(settings.window, now).is_some() {
            return false;
        }
        self.failures.push_back(now);
        let limit = usize::try_from(settings.failures).unwrap_or(usize::MAX);
        if self.failures.len() < limit {
            return false;
        }
        self.failures = VecDeque::new();
        self.ban = Some(Ban {
            since: now,
            length: settings.ban,
        });
        true
    }
}

/// Everything behind the lock.
#[derive(Debug, Default)]
struct Table {
    /// Per-key state.
    entries: HashMap<Key, Entry>,
    /// Keys by insertion sequence number, oldest first, for eviction.
    order: BTreeMap<u64, Key>,
    /// Next insertion sequence number (a `u64` does not wrap in practice).
    next_seq: u64,
}

impl Table {
    /// Remaining ban for `key`, dropping the entry if it turns out to hold nothing.
    fn banned(&mut self, key: Key, settings: &LockoutSettings, now: Instant) -> Option<Duration> {
        let entry = self.entries.get_mut(&key)?;
        let left = entry.refresh(settings.window, now);
        if entry.is_idle() {
            let inserted = entry.inserted;
            self.entries.remove(&key);
            self.order.remove(&inserted);
        }
        left
    }

    /// Records a failure for `key`, inserting (and evicting the oldest entries) if needed; returns whether it
    /// started a ban. Requires `settings.max_entries >= 1`.
    fn record_failure(&mut self, key: Key, settings: &LockoutSettings, now: Instant) -> bool {
        // A reload may have lowered the bound: shrink to it first (this may evict `key` itself).
        self.evict_to(settings.max_entries);
        if !self.entries.contains_key(&key) {
            self.evict_to(settings.max_entries - 1);
        }
        let entry = self.entries.entry(key).or_insert_with(|| {
            let inserted = self.next_seq;
            self.next_seq += 1;
            self.order.insert(inserted, key);
            Entry {
                inserted,
                failures: VecDeque::new(),
                ban: None,
            }
        });
        entry.fail(settings, now)
    }

    /// Evicts the earliest-inserted entries until at most `limit` remain.
    fn evict_to(&mut self, limit: usize) {
        while self.entries.len() > limit {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&key);
        }
    }
}

impl Lockout {
    /// An empty table, created once at startup and kept across config reloads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remaining ban for this client, or for this Basic user when `per_user` is on; the longer one if both.
    ///
    /// Called before verifying credentials, so a banned caller costs no hashing; `Some` means answer 429 with
    /// `Retry-After: retry_after_seconds(remaining)`.
    pub fn banned(
        &self,
        settings: &LockoutSettings,
        client: IpAddr,
        basic_user: Option<&str>,
        now: Instant,
    ) -> Option<Duration> {
        let user = self.user_key(settings, basic_user);
        let mut table = self.lock();
        let by_client = table.banned(Key::client(client), settings, now);
        let by_user = user.and_then(|key| table.banned(key, settings, now));
        by_client.max(by_user)
    }

    /// Records one failed attempt; returns how many new bans it started (0, 1 or 2 — client and user), for the
    /// bans counter.
    ///
    /// Called only after verification actually failed; a key that is already banned is not extended.
    pub fn record_failure(
        &self,
        settings: &LockoutSettings,
        client: IpAddr,
        basic_user: Option<&str>,
        now: Instant,
    ) -> u32 {
        if settings.failures == 0 || settings.max_entries == 0 {
            return 0;
        }
        let user = self.user_key(settings, basic_user);
        let mut table = self.lock();
        let by_client = table.record_failure(Key::client(client), settings, now);
        let by_user = user.is_some_and(|key| table.record_failure(key, settings, now));
        u32::from(by_client) + u32::from(by_user)
    }

    /// Entries currently held (for tests and metrics), to watch the memory bound.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entries are held; the companion of [`Lockout::len`].
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// The user key, when `per_user` is on and a Basic user name was given.
    fn user_key(&self, settings: &LockoutSettings, basic_user: Option<&str>) -> Option<Key> {
        basic_user
            .filter(|_| settings.per_user)
            .map(|name| Key::User(self.user_hasher.hash_one(name)))
    }

    /// The table, recovering it from a poisoned mutex instead of panicking on the request path.
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `Retry-After` seconds for a remaining ban: rounded up, at least 1.
///
/// Rounded up so a client that obeys the header does not come back while still banned; at least 1 because
/// `Retry-After: 0` invites an immediate retry.
pub fn retry_after_seconds(remaining: Duration) -> u64 {
    let whole = remaining.as_secs();
    let rounded = if remaining.subsec_nanos() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    };
    rounded.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const SECOND: Duration = Duration::from_secs(1);

    fn settings() -> LockoutSettings {
        LockoutSettings {
            failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(600),
            per_user: false,
            max_entries: 1000,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    /// Records `n` failures one second apart starting at `start`; returns the total of new bans.
    fn fail_n(
        lockout: &Lockout,
        s: &LockoutSettings,
        client: IpAddr,
        user: Option<&str>,
        start: Instant,
        n: u32,
    ) -> u32 {
        (0..n)
            .map(|i| lockout.record_failure(s, client, user, start + SECOND * i))
            .sum()
    }

    fn holds(lockout: &Lockout, key: Key) -> bool {
        lockout.lock().entries.contains_key(&key)
    }

    #[test]
    fn bans_after_exactly_failures_within_window_and_not_before() {
        let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
        fail_n(&lockout, &s, client, None, t0, 2);
        assert_eq!(lockout.banned(&s, client, None, t0 + SECOND * 2), None);
        lockout.record_failure(&s, client, None, t0 + SECOND * 2);
        assert_eq!(lockout.banned(&s, client, None, t0 + SECOND * 2), Some(s.ban));
    }

    #[test]
    fn failures_spread_wider_than_window_never_ban() {
        let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
        // One failure every 31 s: never three of them within one minute, however long it goes on.
        for i in 0..100 {
            let now = t0 + SECOND * (31 * i);
            assert_eq!(lockout.record_failure(&s, client, None, now), 0);
            assert_eq!(lockout.banned(&s, client, None, now), None);
        }
    }

    #[test]
    fn sliding_window_bans_across_fixed_bucket_boundaries() {
        let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
        // 59 s, 61 s, 62 s: fixed one-minute buckets would split them 1 + 2, the sliding window sees 3.
        lockout.record_failure(&s, client, None, t0 + SECOND * 59);
        lockout.record_failure(&s, client, None, t0 + SECOND * 61);
        assert_eq!(lockout.record_failure(&s, client, None, t0 + SECOND * 62), 1);
    }

    #[test]
    fn ban_expires_after_ban_duration() {
        let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
        fail_n(&lockout, &s, client, None, t0, 3);
        let start = t0 + SECOND * 2;
        assert_eq!(lockout.banned(&s, client, None, start + s.ban - SECOND), Some(SECOND));
        assert_eq!(lockout.banned(&s, client, None, start + s.ban), None);
        assert!(lockout.is_empty(), "an expired ban with no failures is dropped");
    }

    #[test]
    fn failures_are_forgotten_when_the_ban_starts() {
        let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
        fail_n(&lockout, &s, client, None, t0, 3);
        let after = t0 + SECOND * 2 + s.ban;
        assert_eq!(fail_n(&lockout, &s, client, None, after, 2), 0);
        assert_eq!(lockout.banned(&s, client, None, after + SECOND), None);
    }

    #[test]
    fn ban_does_not_grow_with_more_failures() {
        let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
        fail_n(&lockout, &s, client, None, t0, 3);
        let start = t0 + SECOND * 2;
        assert_eq!(fail_n(&lockout, &s, client, None, start + SECOND, 50), 0);
        assert_eq!(
            lockout.banned(&s, client, None, start + SECOND * 10),
            Some(s.ban - SECOND * 10)
        );
        assert_eq!(lockout.banned(&s, client, None, start + s.ban), None);
    }

    #[test]
    fn ipv6_same_slash64_shares_an_entry_and_other_slash64_does_not() {
        let (lockout, s, t0) = (Lockout::new(), settings(), Instant::now());
        lockout.record_failure(&s, ip("2001:db8:1:2::1"), None, t0);
        lockout.record_failure(&s, ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), None, t0);
        lockout.record_failure(&s, ip("2001:db8:1:2:aaaa::5"), None, t0);
        assert_eq!(lockout.len(), 1);
        assert_eq!(lockout.banned(&s, ip("2001:db8:1:2::9"), None, t0), Some(s.ban));
        assert_eq!(lockout.banned(&s, ip("2001:db8:1:3::1"), None, t0), None);
    }

    #[test]
    fn ipv4_mapped_ipv6_equals_ipv4() {
        let (lockout, s, t0) = (Lockout::new(), settings(), Instant::now());
        fail_n(&lockout, &s, ip("::ffff:192.0.2.7"), None, t0, 2);
        assert_eq!(lockout.record_failure(&s, ip("192.0.2.7"), None, t0 + SECOND * 2), 1);
        assert_eq!(lockout.len(), 1);
        assert!(lockout.banned(&s, ip("::ffff:192.0.2.7"), None, t0).is_some());
        assert!(lockout.banned(&s, ip("192.0.2.7"), None, t0).is_some());
    }

    #[test]
    fn loopback_ipv6_stays_ipv6() {
        let (lockout, s, t0) = (Lockout::new(), settings(), Instant::now());
        fail_n(&lockout, &s, ip("::1"), None, t0, 3);
        assert!(lockout.banned(&s, ip("::1"), None, t0).is_some());
        // `to_ipv4()` would have mapped `::1` to 0.0.0.1.
        assert_eq!(lockout.banned(&s, ip("0.0.0.1"), None, t0), None);
        assert!(holds(&lockout, Key::V6Net(0)));
    }

    #[test]
    fn per_user_off_ignores_user_names() {
        let (lockout, s, t0) = (Lockout::new(), settings(), Instant::now());
        for i in 0..10 {
            assert_eq!(lockout.record_failure(&s, v4(i), Some("admin"), t0), 0);
        }
        assert_eq!(lockout.len(), 10, "only client entries");
        assert_eq!(lockout.banned(&s, v4(99), Some("admin"), t0), None);
    }

    #[test]
    fn per_user_on_bans_the_user_from_other_clients() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            per_user: true,
            ..settings()
        };
        for i in 0..3 {
            lockout.record_failure(&s, v4(i), Some("admin"), t0);
        }
        assert_eq!(lockout.banned(&s, v4(99), Some("admin"), t0), Some(s.ban));
        assert_eq!(lockout.banned(&s, v4(99), Some("alice"), t0), None);
        assert_eq!(lockout.banned(&s, v4(99), None, t0), None);
    }

    #[test]
    fn per_user_reports_the_longer_of_client_and_user_ban() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            per_user: true,
            ..settings()
        };
        let client = ip("192.0.2.1");
        fail_n(&lockout, &s, client, None, t0, 3); // client banned from t0 + 2 s
        fail_n(&lockout, &s, v4(7), Some("admin"), t0 + SECOND * 10, 3); // admin banned from t0 + 12 s
        let now = t0 + SECOND * 20;
        assert_eq!(lockout.banned(&s, client, None, now), Some(s.ban - SECOND * 18));
        assert_eq!(lockout.banned(&s, client, Some("admin"), now), Some(s.ban - SECOND * 8));
    }

    #[test]
    fn record_failure_returns_the_number_of_new_bans() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            per_user: true,
            ..settings()
        };
        let client = ip("192.0.2.1");
        assert_eq!(fail_n(&lockout, &s, client, Some("admin"), t0, 2), 0);
        assert_eq!(lockout.record_failure(&s, client, Some("admin"), t0 + SECOND * 2), 2);
        assert_eq!(lockout.record_failure(&s, client, Some("admin"), t0 + SECOND * 3), 0);
        fail_n(&lockout, &s, v4(1), Some("root"), t0, 2);
        assert_eq!(lockout.record_failure(&s, v4(2), Some("root"), t0 + SECOND * 2), 1);
    }

    #[test]
    fn max_entries_evicts_the_earliest_inserted_not_the_least_recently_updated() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            max_entries: 3,
            ..settings()
        };
        for i in 1..=3 {
            lockout.record_failure(&s, v4(i), None, t0);
        }
        lockout.record_failure(&s, v4(1), None, t0 + SECOND); // updated last, but inserted first
        lockout.record_failure(&s, v4(4), None, t0 + SECOND);
        assert_eq!(lockout.len(), 3);
        assert!(!holds(&lockout, Key::client(v4(1))));
        for i in 2..=4 {
            assert!(holds(&lockout, Key::client(v4(i))));
        }
    }

    #[test]
    fn eviction_keeps_bans_of_entries_still_present() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            max_entries: 3,
            ..settings()
        };
        lockout.record_failure(&s, v4(1), None, t0);
        fail_n(&lockout, &s, v4(2), None, t0, 3);
        lockout.record_failure(&s, v4(3), None, t0);
        lockout.record_failure(&s, v4(4), None, t0); // evicts v4(1), the oldest
        assert!(lockout.banned(&s, v4(2), None, t0 + SECOND * 3).is_some());
    }

    #[test]
    fn table_never_exceeds_max_entries_under_ten_times_the_distinct_keys() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            max_entries: 100,
            per_user: true,
            ..settings()
        };
        for i in 0..1000 {
            let user = format!("user{i}");
            lockout.record_failure(&s, v4(i), Some(&user), t0);
            assert!(lockout.len() <= s.max_entries);
        }
        assert_eq!(lockout.len(), s.max_entries);
    }

    #[test]
    fn lowered_max_entries_shrinks_the_table_on_the_next_failure() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        for i in 0..10 {
            lockout.record_failure(&settings(), v4(i), None, t0);
        }
        let s = LockoutSettings {
            max_entries: 4,
            ..settings()
        };
        lockout.record_failure(&s, v4(9), None, t0);
        assert_eq!(lockout.len(), 4);
        assert!(holds(&lockout, Key::client(v4(9))));
    }

    #[test]
    fn per_key_memory_is_bounded_by_failures() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        let s = LockoutSettings {
            failures: 5,
            window: Duration::from_secs(3600),
            ..settings()
        };
        for i in 0..1000 {
            lockout.record_failure(&s, v4(1), None, t0 + s.ban * i);
            let table = lockout.lock();
            let entry = table.entries.get(&Key::client(v4(1))).expect("entry present");
            assert!(entry.failures.len() < 5);
        }
    }

    #[test]
    fn zero_failures_or_zero_max_entries_records_nothing() {
        let (lockout, t0) = (Lockout::new(), Instant::now());
        for s in [
            LockoutSettings {
                failures: 0,
                ..settings()
            },
            LockoutSettings {
                max_entries: 0,
                ..settings()
            },
        ] {
            assert_eq!(fail_n(&lockout, &s, v4(1), None, t0, 10), 0);
            assert!(lockout.is_empty());
            assert_eq!(lockout.banned(&s, v4(1), None, t0), None);
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1100)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::MAX), u64::MAX);
    }

    #[test]
    fn poisoned_mutex_does_not_panic() {
        let (lockout, s, t0) = (Arc::new(Lockout::new()), settings(), Instant::now());
        fail_n(&lockout, &s, v4(1), None, t0, 2);
        let poisoner = Arc::clone(&lockout);
        let result = std::thread::spawn(move || {
            let _guard = poisoner.table.lock();
            panic!("poison the lockout mutex");
        })
        .join();
        assert!(result.is_err());
        assert!(lockout.table.is_poisoned());
        assert_eq!(lockout.record_failure(&s, v4(1), None, t0 + SECOND * 2), 1);
        assert!(lockout.banned(&s, v4(1), None, t0 + SECOND * 3).is_some());
        assert_eq!(lockout.len(), 1);
        assert!(!lockout.is_empty());
    }

    #[test]
    fn time_going_backwards_does_not_panic() {
        let (lockout, s, t0) = (Lockout::new(), settings(), Instant::now());
        let later = t0 + SECOND * 30;
        lockout.record_failure(&s, v4(1), None, later);
        lockout.record_failure(&s, v4(1), None, t0);
        assert_eq!(lockout.record_failure(&s, v4(1), None, later), 1);
        assert_eq!(lockout.banned(&s, v4(1), None, t0), Some(s.ban));
    }

    proptest! {
        /// The table agrees with a naive model: a key is banned exactly when the last `failures` unbanned
        /// failures since its previous ban ended lie within the window.
        #[test]
        fn sliding_window_matches_naive_model(gaps in proptest::collection::vec(0u64..40, 1..60)) {
            let (lockout, s, t0, client) = (Lockout::new(), settings(), Instant::now(), ip("192.0.2.1"));
            let mut counted: Vec<u64> = Vec::new();
            let mut ban_until: Option<u64> = None;
            let mut now = 0;
            for gap in gaps {
                now += gap;
                let at = t0 + SECOND * u32::try_from(now).expect("small");
                let banned = ban_until.is_some_and(|until| now < until);
                if !banned {
                    ban_until = None;
                    counted.retain(|&t| now - t < s.window.as_secs());
                    counted.push(now);
                }
                let expect_new = !banned && counted.len() == s.failures as usize;
                if expect_new {
                    counted.clear();
                    ban_until = Some(now + s.ban.as_secs());
                }
                prop_assert_eq!(lockout.record_failure(&s, client, None, at), u32::from(expect_new));
                let left = ban_until.filter(|&until| now < until).map(|until| SECOND * u32::try_from(until - now).expect("small"));
                prop_assert_eq!(lockout.banned(&s, client, None, at), left);
            }
        }

        /// Whatever the mix of keys, the table never holds more than `max_entries`.
        #[test]
        fn table_size_never_exceeds_bound(max in 1usize..20, keys in proptest::collection::vec(0u32..200, 0..400)) {
            let (lockout, t0) = (Lockout::new(), Instant::now());
            let s = LockoutSettings { max_entries: max, per_user: true, ..settings() };
            for key in keys {
                let user = format!("u{}", key % 7);
                lockout.record_failure(&s, v4(key), Some(&user), t0);
                prop_assert!(lockout.len() <= max);
            }
        }
    }
}
