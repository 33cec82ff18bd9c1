//! The PROXY protocol header (v1 text, v2 binary) that an L4 load balancer puts in
//! front of a connection to say who the client is.
//!
//! The header is read exactly — never a byte past it — so the request that follows
//! reaches hyper whole. v2 is 16 bytes and then the length it states; v1 is read up to
//! its CRLF, at most 107 bytes. Parsing is strict: anything that is not a well-formed
//! header is an error and the caller closes the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The twelve bytes every v2 header starts with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header the protocol allows, CRLF included.
const V1_MAX_LEN: usize = 107;
/// The shortest v1 header: `PROXY UNKNOWN\r\n`.
const V1_MIN_LEN: usize = 15;
/// The most address and TLV bytes a v2 header may carry here. Real load balancers send
/// a few hundred at most (AWS adds a VPC endpoint TLV); this bounds what a broken or
/// hostile sender can make the proxy read.
const V2_MAX_PAYLOAD: usize = 2048;

/// What a well-formed header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxiedPeer {
    /// The client's address, which replaces the socket peer.
    Client(SocketAddr),
    /// LOCAL (a health check from the balancer itself), UNKNOWN, or an address family
    /// with no IP: the socket peer stays the peer.
    KeepSocketPeer,
}

/// Why a header was refused; the connection is closed and the refusal counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection ended before the header did.
    #[error("the connection ended inside the PROXY header")]
    Truncated,
    /// The bytes are not a PROXY header, or not a valid one.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Reads one PROXY header (v1 or v2) from the start of `stream`, consuming exactly its
/// bytes. The caller bounds the time it may take.
pub async fn read_header<R: AsyncRead + Unpin>(stream: &mut R) -> Result<ProxiedPeer, ProxyHeaderError> {
    let mut head = [0u8; 16];
    read_exact(stream, &mut head[..V1_MIN_LEN]).await?;
    if head.starts_with(b"PROXY ") {
        return read_v1(stream, &head[..V1_MIN_LEN]).await;
    }
    if !head.starts_with(&V2_SIGNATURE) {
        return Err(ProxyHeaderError::Malformed("no PROXY v1 or v2 signature"));
    }
    read_exact(stream, &mut head[V1_MIN_LEN..]).await?;
    let length = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if length > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::Malformed("v2 header longer than 2048 bytes"));
    }
    let mut payload = vec![0u8; length];
    read_exact(stream, &mut payload).await?;
    parse_v2(head[12], head[13], &payload)
}

async fn read_exact<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut [u8]) -> Result<(), ProxyHeaderError> {
    stream
        .read_exact(buffer)
        .await
        .map(drop)
        .map_err(|_| ProxyHeaderError::Truncated)
}

/// Reads the rest of a v1 line one byte at a time: a v1 header has no length field,
/// and reading ahead could swallow the start of the request.
async fn read_v1<R: AsyncRead + Unpin>(stream: &mut R, start: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    let mut line = Vec::with_capacity(V1_MAX_LEN);
    line.extend_from_slice(start);
    while !line.ends_with(b"\r\n") {
        if line.len() == V1_MAX_LEN {
            return Err(ProxyHeaderError::Malformed("v1 header longer than 107 bytes"));
        }
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        line.push(byte[0]);
    }
    parse_v1(&line)
}

/// Parses a complete v1 line, `PROXY <TCP4|TCP6|UNKNOWN> src dst sport dport\r\n`.
pub fn parse_v1(line: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    let malformed = ProxyHeaderError::Malformed;
    let text = std::str::from_utf8(line).map_err(|_| malformed("v1 header is not ASCII"))?;
    let body = text
        .strip_prefix("PROXY ")
        .and_then(|rest| rest.strip_suffix("\r\n"))
        .ok_or(malformed("v1 header does not start with \"PROXY \" and end with CRLF"))?;
    if body == "UNKNOWN" || body.starts_with("UNKNOWN ") {
        return Ok(ProxiedPeer::KeepSocketPeer);
    }
    let fields: Vec<&str> = body.split(' ').collect();
    let [family, source, destination, source_port, destination_port] = fields[..] else {
        return Err(malformed("v1 header needs a family, two addresses and two ports"));
    };
    let ip = match family {
        "TCP4" => source.parse::<Ipv4Addr>().map(IpAddr::V4).ok(),
        "TCP6" => source.parse::<Ipv6Addr>().map(IpAddr::V6).ok(),
        _ => return Err(malformed("v1 family is not TCP4, TCP6 or UNKNOWN")),
    }
    .ok_or(malformed("v1 source address does not match its family"))?;
    let destination_ok = match family {
        "TCP4" => destination.parse::<Ipv4Addr>().is_ok(),
        _ => destination.parse::<Ipv6Addr>().is_ok(),
    };
    if !destination_ok {
        return Err(malformed("v1 destination address does not match its family"));
    }
    let port = parse_port(source_port).ok_or(malformed("v1 source port is not 0-65535"))?;
    parse_port(destination_port).ok_or(malformed("v1 destination port is not 0-65535"))?;
    Ok(ProxiedPeer::Client(SocketAddr::new(ip, port)))
}

/// A decimal port without sign or leading zeros, as the protocol writes them.
fn parse_port(text: &str) -> Option<u16> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let canonical = text == "0" || !text.starts_with('0');
    if digits_only && canonical {
        text.parse().ok()
    } else {
        None
    }
}

/// Parses the v2 version/command byte, the family byte and the payload after them.
pub fn parse_v2(version_command: u8, family: u8, payload: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    let malformed = ProxyHeaderError::Malformed;
    if version_command >> 4 != 2 {
        return Err(malformed("v2 version is not 2"));
    }
    match version_command & 0x0f {
        0x0 => return Ok(ProxiedPeer::KeepSocketPeer),
        0x1 => {}
        _ => return Err(malformed("v2 command is neither LOCAL nor PROXY")),
    }
    match family >> 4 {
        0x1 => {
            let addresses = payload.get(..12).ok_or(malformed("v2 IPv4 addresses are cut short"))?;
            let ip = Ipv4Addr::new(addresses[0], addresses[1], addresses[2], addresses[3]);
            let port = u16::from_be_bytes([addresses[8], addresses[9]]);
            Ok(ProxiedPeer::Client(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        0x2 => {
            let addresses = payload.get(..36).ok_or(malformed("v2 IPv6 addresses are cut short"))?;
            let octets: [u8; 16] = addresses[..16].try_into().expect("16 bytes");
            let port = u16::from_be_bytes([addresses[32], addresses[33]]);
            Ok(ProxiedPeer::Client(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        0x0 | 0x3 => Ok(ProxiedPeer::KeepSocketPeer),
        _ => Err(malformed("v2 address family is unknown")),
    }
}

#[cfg(test)]
mod tests;
