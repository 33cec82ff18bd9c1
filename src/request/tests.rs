//! Request checks, host selection and the X-Forwarded-For walk.

use super::*;
use crate::rules::parse_cidr;

fn parts(method: &str, uri: &str, version: Version, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(uri).version(version);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn trusted(list: &[&str]) -> IpRangeSet {
    IpRangeSet::new(list.iter().map(|c| parse_cidr(c).unwrap()))
}

fn inspect_h1(method: &str, uri: &str, headers: &[(&str, &str)]) -> Result<Inspected, BadRequest> {
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    inspect(
        &parts(method, uri, Version::HTTP_11, headers),
        peer,
        &PathOptions::default(),
        &IpRangeSet::default(),
    )
}

fn inspect_h2(uri: &str, headers: &[(&str, &str)]) -> Result<Inspected, BadRequest> {
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    inspect(
        &parts("GET", uri, Version::HTTP_2, headers),
        peer,
        &PathOptions::default(),
        &IpRangeSet::default(),
    )
}

#[test]
fn lower_case_methods_are_bad_requests() {
    assert_eq!(inspect_h1("delete", "/x", &[("host", "a")]), Err(BadRequest::Method));
    assert_eq!(inspect_h1("Get", "/x", &[("host", "a")]), Err(BadRequest::Method));
    assert!(inspect_h1("M-SEARCH", "/x", &[("host", "a")]).is_ok());
}

#[test]
fn http11_without_host_is_a_bad_request() {
    assert_eq!(inspect_h1("GET", "/", &[]), Err(BadRequest::MissingHost));
}

#[test]
fn http10_without_host_has_no_host() {
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    let inspected = inspect(
        &parts("GET", "/", Version::HTTP_10, &[]),
        peer,
        &PathOptions::default(),
        &IpRangeSet::default(),
    )
    .unwrap();
    assert_eq!(inspected.facts.host, None);
}

#[test]
fn two_host_headers_are_a_bad_request() {
    assert_eq!(
        inspect_h1("GET", "/", &[("host", "a.test"), ("host", "b.test")]),
        Err(BadRequest::DuplicateHost)
    );
    assert_eq!(
        inspect_h2("http://a.test/", &[("host", "a.test"), ("host", "a.test")]),
        Err(BadRequest::DuplicateHost)
    );
}

#[test]
fn host_is_lowercased_without_port_or_trailing_dot() {
    let inspected = inspect_h1("GET", "/", &[("host", "Admin.Example.COM.:8080")]).unwrap();
    assert_eq!(inspected.facts.host.as_deref(), Some("admin.example.com"));
    assert_eq!(inspected.host_as_sent.unwrap(), "Admin.Example.COM.:8080");
}

#[test]
fn absolute_form_authority_wins_over_host_header() {
    let inspected = inspect_h1("GET", "http://admin.example.com/x", &[("host", "www.example.com")]).unwrap();
    assert_eq!(inspected.facts.host.as_deref(), Some("admin.example.com"));
    assert_eq!(inspected.host_as_sent.unwrap(), "admin.example.com");
}

#[test]
fn http2_authority_is_the_host() {
    let inspected = inspect_h2("http://admin.example.com/x", &[]).unwrap();
    assert_eq!(inspected.facts.host.as_deref(), Some("admin.example.com"));
}

#[test]
fn http2_host_header_differing_from_authority_is_a_bad_request() {
    assert_eq!(
        inspect_h2("http://www.example.com/x", &[("host", "admin.example.com")]),
        Err(BadRequest::HostMismatch)
    );
    assert!(inspect_h2("http://www.example.com/x", &[("host", "WWW.example.com")]).is_ok());
}

#[test]
fn http2_without_authority_uses_host_header() {
    let inspected = inspect_h2("/x", &[("host", "admin.example.com")]).unwrap();
    assert_eq!(inspected.facts.host.as_deref(), Some("admin.example.com"));
}

#[test]
fn hosts_with_odd_characters_are_bad_requests() {
    for host in [
        "a b",
        "%61dmin.test",
        "a.test:",
        "a.test:http",
        "a..test",
        ".",
        "[::1",
        "[zz]:80",
        "a.test:123456",
    ] {
        assert_eq!(
            inspect_h1("GET", "/", &[("host", host)]),
            Err(BadRequest::InvalidHost),
            "{host}"
        );
    }
}

#[test]
fn ipv6_literal_hosts_keep_their_brackets() {
    let inspected = inspect_h1("GET", "/", &[("host", "[2001:DB8::1]:8443")]).unwrap();
    assert_eq!(inspected.facts.host.as_deref(), Some("[2001:db8::1]"));
}

#[test]
fn asterisk_target_only_with_options() {
    let inspected = inspect_h1("OPTIONS", "*", &[("host", "a")]).unwrap();
    assert_eq!(inspected.facts.path.key, "*");
    assert_eq!(inspect_h1("GET", "*", &[("host", "a")]), Err(BadRequest::Target));
}

#[test]
fn non_http_absolute_targets_are_bad_requests() {
    assert_eq!(
        inspect_h1("GET", "ftp://a.test/x", &[("host", "a.test")]),
        Err(BadRequest::Target)
    );
}

#[test]
fn paths_are_normalized_into_the_facts() {
    let inspected = inspect_h1("GET", "/%61dmin/./x/../users?q=1", &[("host", "a")]).unwrap();
    assert_eq!(inspected.facts.path.forwarded, "/admin/users");
}

#[test]
fn unsafe_paths_are_bad_requests() {
    assert!(matches!(
        inspect_h1("GET", "/..;/admin", &[("host", "a")]),
        Err(BadRequest::Path(_))
    ));
}

fn walk(peer: &str, xff: &[&str], trusted_list: &[&str]) -> String {
    let mut headers = HeaderMap::new();
    for value in xff {
        headers.append("x-forwarded-for", value.parse().unwrap());
    }
    client_ip(peer.parse().unwrap(), &headers, &trusted(trusted_list)).to_string()
}

#[test]
fn untrusted_peers_are_the_client_whatever_they_claim() {
    assert_eq!(walk("198.51.100.9", &["1.2.3.4"], &["10.0.0.0/8"]), "198.51.100.9");
}

#[test]
fn trusted_peer_yields_rightmost_untrusted_hop() {
    assert_eq!(
        walk("10.0.0.1", &["1.2.3.4, 5.6.7.8, 10.0.0.7"], &["10.0.0.0/8"]),
        "5.6.7.8"
    );
}

#[test]
fn multiple_xff_headers_are_one_list_in_order() {
    assert_eq!(walk("10.0.0.1", &["1.2.3.4", "5.6.7.8"], &["10.0.0.0/8"]), "5.6.7.8");
    assert_eq!(walk("10.0.0.1", &["1.2.3.4", "10.0.0.9"], &["10.0.0.0/8"]), "1.2.3.4");
}

#[test]
fn entries_with_ports_are_understood() {
    assert_eq!(walk("10.0.0.1", &["192.0.2.5:4711"], &["10.0.0.0/8"]), "192.0.2.5");
    assert_eq!(
        walk("10.0.0.1", &["[2001:db8::5]:4711"], &["10.0.0.0/8"]),
        "2001:db8::5"
    );
    assert_eq!(walk("10.0.0.1", &["[2001:db8::6]"], &["10.0.0.0/8"]), "2001:db8::6");
    assert_eq!(walk("10.0.0.1", &["2001:db8::7"], &["10.0.0.0/8"]), "2001:db8::7");
}

#[test]
fn all_trusted_chain_yields_leftmost() {
    assert_eq!(walk("10.0.0.1", &["10.0.0.3, 10.0.0.2"], &["10.0.0.0/8"]), "10.0.0.3");
}

#[test]
fn unparseable_entry_stops_at_last_trusted_hop() {
    assert_eq!(
        walk("10.0.0.1", &["1.2.3.4, garbage, 10.0.0.2"], &["10.0.0.0/8"]),
        "10.0.0.2"
    );
    assert_eq!(walk("10.0.0.1", &["1.2.3.4, unknown"], &["10.0.0.0/8"]), "10.0.0.1");
    assert_eq!(walk("10.0.0.1", &["1.2.3.4,,10.0.0.2"], &["10.0.0.0/8"]), "10.0.0.2");
}

#[test]
fn mapped_addresses_in_xff_become_ipv4() {
    assert_eq!(
        walk("10.0.0.1", &["::ffff:203.0.113.9"], &["10.0.0.0/8"]),
        "203.0.113.9"
    );
    assert_eq!(
        walk("::ffff:10.0.0.1", &["203.0.113.9"], &["10.0.0.0/8"]),
        "203.0.113.9"
    );
}

#[test]
fn no_xff_from_trusted_peer_is_the_peer() {
    assert_eq!(walk("10.0.0.1", &[], &["10.0.0.0/8"]), "10.0.0.1");
}
