//! The path attacks of the hostile suite, shared by the plain-text and TLS runs.

use super::oracle;

/// What an attempt must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 400, 403 or 404, and no upstream hit.
    Blocked,
    /// Forwarded (a near miss that is not the protected resource), judged by the oracle.
    Forwarded,
}
use Expect::{Blocked, Forwarded};

pub const PROTECTED: &str = "/admin";

pub fn rules(policy: &str) -> String {
    format!(
        "[policy]\n{policy}\n[[rule]]\nname = \"admin\"\npaths = [\"/admin/**\"]\naction = \"deny\"\n[[rule]]\nname = \"rest\"\naction = \"allow\"\n"
    )
}

/// The path attacks, by class, against the default policy (case-sensitive, escaped
/// separators rejected, slashes merged).
pub fn path_attacks() -> Vec<(&'static str, String, Expect)> {
    let long_climb = format!("/{}admin", "a/../".repeat(2000));
    let long_dots = format!("/{}admin/x", "./".repeat(4000));
    let long_tail = format!("/admin/{}", "x/".repeat(3000));
    let long_escaped = format!("/{}admin", "%2e%2e/".repeat(1000));
    let table: Vec<(&str, &str, Expect)> = vec![
        // Percent-encoding of unreserved characters: decoded once, then matched.
        ("percent-encoding", "/%61dmin", Blocked),
        ("percent-encoding", "/%61%64%6d%69%6e/users", Blocked),
        ("percent-encoding", "/a%64min/x", Blocked),
        ("percent-encoding", "/adm%69n", Blocked),
        ("percent-encoding", "/admi%6E/", Blocked),
        ("percent-encoding", "/%2e/admin", Blocked),
        ("percent-encoding", "/%61dmin/%2e%2e/admin/x", Blocked),
        ("percent-encoding", "/%2fadmin", Blocked),
        ("percent-encoding", "/admin%2fx", Blocked),
        ("percent-encoding", "/%5cadmin", Blocked),
        ("percent-encoding", "/%61dmin%3bx", Blocked),
        ("percent-encoding", "/public%2F..%2Fadmin", Blocked),
        ("percent-encoding", "/%41dmin", Forwarded),
        ("percent-encoding", "/admin%23x", Forwarded),
        // Mixed-case hex digits.
        ("mixed-case escapes", "/%2E%2e/admin", Blocked),
        ("mixed-case escapes", "/%2e%2E/admin", Blocked),
        ("mixed-case escapes", "/public/%2E%2E/admin", Blocked),
        ("mixed-case escapes", "/%6D%61/../%61%44%6d%69%6E", Forwarded),
        // Double encoding: refused whatever it decodes to.
        ("double encoding", "/%2561dmin", Blocked),
        ("double encoding", "/%252e%252e/admin", Blocked),
        ("double encoding", "/%25%32%65%25%32%65/admin", Blocked),
        ("double encoding", "/public/%252e%252e/admin", Blocked),
        ("double encoding", "/%252fadmin", Blocked),
        ("double encoding", "/%255cadmin", Blocked),
        ("double encoding", "/%25%36%31dmin", Blocked),
        ("double encoding", "/%25252e/admin", Blocked),
        // Overlong UTF-8 (CVE-2000-0884 style): never valid UTF-8.
        ("overlong UTF-8", "/%C0%AE%C0%AE/admin", Blocked),
        ("overlong UTF-8", "/%E0%80%AE%E0%80%AE/admin", Blocked),
        ("overlong UTF-8", "/%C1%A1dmin", Blocked),
        ("overlong UTF-8", "/%C0%AFadmin", Blocked),
        ("overlong UTF-8", "/public%C0%AF..%C0%AFadmin", Blocked),
        ("overlong UTF-8", "/%F0%80%80%AE%F0%80%80%AE/admin", Blocked),
        // Dot segments.
        ("dot segments", "/public/../admin", Blocked),
        ("dot segments", "/./admin", Blocked),
        ("dot segments", "/admin/./x", Blocked),
        ("dot segments", "/x/../../admin", Blocked),
        ("dot segments", "/public/./../admin/x", Blocked),
        ("dot segments", "/admin/x/..", Blocked),
        ("dot segments", "/../admin", Blocked),
        ("dot segments", "/a/b/../../admin", Blocked),
        ("dot segments", "/public/.%2e/admin", Blocked),
        ("dot segments", "/public/%2e./admin", Blocked),
        ("dot segments", "/public/%2e%2e/admin", Blocked),
        ("dot segments", "/admin/..", Forwarded),
        ("dot segments", "/admin../x", Forwarded),
        // Merged and encoded slashes.
        ("slashes", "//admin", Blocked),
        ("slashes", "///admin/x", Blocked),
        ("slashes", "/public//../admin", Blocked),
        ("slashes", "/admin//", Blocked),
        ("slashes", "//admin//", Blocked),
        ("slashes", "/%2F%2Fadmin", Blocked),
        ("slashes", "//%61dmin", Blocked),
        ("slashes", "/public/%2F../admin", Blocked),
        // Backslashes, raw and escaped.
        ("backslashes", "/\\admin", Blocked),
        ("backslashes", "/public\\..\\admin", Blocked),
        ("backslashes", "/admin\\x", Blocked),
        ("backslashes", "/%5Cadmin", Blocked),
        ("backslashes", "/public%5C..%5Cadmin", Blocked),
        ("backslashes", "/\\\\admin", Blocked),
        // `;` path parameters (Tomcat, Jetty, Spring).
        ("semicolon parameters", "/admin;x", Blocked),
        ("semicolon parameters", "/admin;/x", Blocked),
        ("semicolon parameters", "/admin;jsessionid=1/x", Blocked),
        ("semicolon parameters", "/..;/admin", Blocked),
        ("semicolon parameters", "/public/..;/admin", Blocked),
        ("semicolon parameters", "/.;/admin", Blocked),
        ("semicolon parameters", "/public/..;x=1/admin", Blocked),
        ("semicolon parameters", "/%2e%2e;/admin", Blocked),
        ("semicolon parameters", "/admin%3b/x", Blocked),
        ("semicolon parameters", "/;x/admin", Blocked),
        // NUL and control bytes.
        ("control bytes", "/admin%00", Blocked),
        ("control bytes", "/%00/admin", Blocked),
        ("control bytes", "/admin%0a", Blocked),
        ("control bytes", "/admin%0d%0a", Blocked),
        ("control bytes", "/adm%09in", Blocked),
        ("control bytes", "/admin%7f", Blocked),
        ("control bytes", "/ad\tmin", Blocked),
        ("control bytes", "/admin%1b", Blocked),
        // Fragments never reach the rules or the upstream.
        ("fragments", "/admin#x", Blocked),
        ("fragments", "/public#/../admin", Forwarded),
        ("fragments", "/admin/x#", Blocked),
        // Trailing dots and spaces on a case-sensitive policy: different paths.
        ("trailing dots and spaces", "/admin.", Forwarded),
        ("trailing dots and spaces", "/admin%20", Forwarded),
        // Case on a case-sensitive policy: a different path, and the oracle (without
        // case folding) agrees.
        ("case", "/ADMIN", Forwarded),
        ("case", "/Admin/x", Forwarded),
        // More of the same families, in combination.
        ("combined", "/admin?x=../public", Blocked),
        ("combined", "/admin/%2e", Blocked),
        ("combined", "/%2e%2e%2fadmin", Blocked),
        ("combined", "/public/%2e%2e%5cadmin", Blocked),
        ("combined", "/admin%09", Blocked),
        ("combined", "/admin%ff", Blocked),
        ("combined", "/public/..%2fadmin", Blocked),
        ("combined", "/admin/../admin/x", Blocked),
        ("combined", "/.%2e/.%2e/admin", Blocked),
        ("combined", "/admin/%", Blocked),
        ("combined", "/%ad%6din", Blocked),
        ("combined", "/x/..%00/admin", Blocked),
        ("combined", "/admin//x", Blocked),
        ("combined", "/%EF%BC%A1dmin", Forwarded),
        ("combined", "/%E2%80%AEnimda", Forwarded),
    ];
    let mut attacks: Vec<(&'static str, String, Expect)> = table
        .into_iter()
        .map(|(class, target, expect)| (class, target.to_string(), expect))
        .collect();
    for long in [long_climb, long_dots, long_tail, long_escaped] {
        attacks.push(("very long paths", long, Blocked));
    }
    attacks
}

/// Checks one attempt: blocked ones are refused and never forwarded; everything forwarded
/// passes the oracle.
pub fn judge(class: &str, target: &str, expect: Expect, status: u16, received: &[String], case_insensitive: bool) {
    for forwarded in received {
        let bypasses = oracle::bypasses(forwarded, PROTECTED, case_insensitive);
        assert!(
            bypasses.is_empty(),
            "{class}: {target:?} reached the upstream as {forwarded:?}, read as {bypasses:?}"
        );
    }
    match expect {
        Blocked => {
            assert!(matches!(status, 400 | 403 | 404), "{class}: {target:?} got {status}");
            assert!(
                received.is_empty(),
                "{class}: {target:?} reached the upstream as {received:?}"
            );
        }
        Forwarded => assert_eq!(
            status, 200,
            "{class}: {target:?} is not the protected path and should pass"
        ),
    }
}
