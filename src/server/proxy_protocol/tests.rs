use super::*;

/// Reads a header from `bytes` and returns it with whatever the reader left unread.
async fn read_from(bytes: &[u8]) -> (Result<ProxiedPeer, ProxyHeaderError>, Vec<u8>) {
    let mut stream = bytes;
    let result = read_header(&mut stream).await;
    (result, stream.to_vec())
}

fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    header.extend_from_slice(payload);
    header
}

fn v2_tcp4() -> Vec<u8> {
    let mut payload = vec![203, 0, 113, 7, 10, 0, 0, 1];
    payload.extend_from_slice(&51000u16.to_be_bytes());
    payload.extend_from_slice(&443u16.to_be_bytes());
    v2(0x1, 0x11, &payload)
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

#[tokio::test]
async fn v1_tcp4_gives_the_client_address_and_leaves_the_request() {
    let bytes = [b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n".as_slice(), REQUEST].concat();
    let (result, rest) = read_from(&bytes).await;
    assert_eq!(result, Ok(ProxiedPeer::Client("203.0.113.7:51000".parse().unwrap())));
    assert_eq!(rest, REQUEST);
}

#[tokio::test]
async fn v1_tcp6_gives_the_client_address() {
    let bytes = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
    let (result, rest) = read_from(bytes).await;
    assert_eq!(result, Ok(ProxiedPeer::Client("[2001:db8::7]:51000".parse().unwrap())));
    assert!(rest.is_empty());
}

#[tokio::test]
async fn v1_unknown_keeps_the_socket_peer_and_consumes_only_its_line() {
    let bytes = [b"PROXY UNKNOWN\r\n".as_slice(), REQUEST].concat();
    let (result, rest) = read_from(&bytes).await;
    assert_eq!(result, Ok(ProxiedPeer::KeepSocketPeer));
    assert_eq!(rest, REQUEST);
}

#[tokio::test]
async fn v2_tcp4_gives_the_client_address_and_leaves_the_request() {
    let bytes = [v2_tcp4(), REQUEST.to_vec()].concat();
    let (result, rest) = read_from(&bytes).await;
    assert_eq!(result, Ok(ProxiedPeer::Client("203.0.113.7:51000".parse().unwrap())));
    assert_eq!(rest, REQUEST);
}

#[tokio::test]
async fn v2_tcp6_gives_the_client_address() {
    let mut payload = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    payload.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    payload.extend_from_slice(&51000u16.to_be_bytes());
    payload.extend_from_slice(&443u16.to_be_bytes());
    let (result, _) = read_from(&v2(0x1, 0x21, &payload)).await;
    assert_eq!(result, Ok(ProxiedPeer::Client("[2001:db8::7]:51000".parse().unwrap())));
}

#[tokio::test]
async fn v2_tlvs_after_the_addresses_are_consumed_with_the_header() {
    let mut header = v2_tcp4();
    let tlv = [0x04, 0x00, 0x03, b'a', b'b', b'c'];
    header[15] += u8::try_from(tlv.len()).unwrap();
    header.extend_from_slice(&tlv);
    let (result, rest) = read_from(&[header, REQUEST.to_vec()].concat()).await;
    assert_eq!(result, Ok(ProxiedPeer::Client("203.0.113.7:51000".parse().unwrap())));
    assert_eq!(rest, REQUEST);
}

#[tokio::test]
async fn v2_local_keeps_the_socket_peer() {
    let (result, rest) = read_from(&[v2(0x0, 0x00, &[]), REQUEST.to_vec()].concat()).await;
    assert_eq!(result, Ok(ProxiedPeer::KeepSocketPeer));
    assert_eq!(rest, REQUEST);
}

#[tokio::test]
async fn a_request_without_a_header_is_refused() {
    let (result, _) = read_from(REQUEST).await;
    assert!(matches!(result, Err(ProxyHeaderError::Malformed(_))), "{result:?}");
}

#[tokio::test]
async fn truncated_headers_are_refused() {
    let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n";
    let v2 = v2_tcp4();
    for cut in [1, 10, 15, 30, v1.len() - 1] {
        assert_eq!(
            read_from(&v1[..cut]).await.0,
            Err(ProxyHeaderError::Truncated),
            "v1 cut at {cut}"
        );
    }
    for cut in [5, 15, 16, 20, v2.len() - 1] {
        assert_eq!(
            read_from(&v2[..cut]).await.0,
            Err(ProxyHeaderError::Truncated),
            "v2 cut at {cut}"
        );
    }
}

#[tokio::test]
async fn a_v1_line_over_107_bytes_is_refused_without_reading_on() {
    let long = format!("PROXY UNKNOWN{}\r\n", " x".repeat(60));
    let (result, rest) = read_from(long.as_bytes()).await;
    assert!(matches!(result, Err(ProxyHeaderError::Malformed(_))), "{result:?}");
    assert_eq!(rest.len(), long.len() - V1_MAX_LEN);
}

#[test]
fn malformed_v1_lines_are_refused() {
    for line in [
        "PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n",
        "PROXY TCP4 2001:db8::7 10.0.0.1 51000 443\r\n",
        "PROXY TCP6 203.0.113.7 2001:db8::1 51000 443\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 65536 443\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 +5 443\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 051000 443\r\n",
        "PROXY TCP4  203.0.113.7 10.0.0.1 51000 443\r\n",
        "PROXY UDP4 203.0.113.7 10.0.0.1 51000 443\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 51000 443 extra\r\n",
    ] {
        assert!(parse_v1(line.as_bytes()).is_err(), "{line:?} was accepted");
    }
}

#[test]
fn malformed_v2_headers_are_refused() {
    assert!(parse_v2(0x11, 0x11, &[0; 12]).is_err(), "version 1");
    assert!(parse_v2(0x22, 0x11, &[0; 12]).is_err(), "command 2");
    assert!(parse_v2(0x21, 0x11, &[0; 11]).is_err(), "short IPv4 addresses");
    assert!(parse_v2(0x21, 0x21, &[0; 35]).is_err(), "short IPv6 addresses");
    assert!(parse_v2(0x21, 0x41, &[0; 12]).is_err(), "unknown family");
}

#[tokio::test]
async fn an_oversized_v2_length_is_refused() {
    let mut header = v2(0x1, 0x11, &[0; 12]);
    header[14..16].copy_from_slice(&4000u16.to_be_bytes());
    let (result, _) = read_from(&header).await;
    assert!(matches!(result, Err(ProxyHeaderError::Malformed(_))), "{result:?}");
}
