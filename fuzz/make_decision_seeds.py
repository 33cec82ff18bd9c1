#!/usr/bin/env python3
"""Writes the seed corpus of the `decision` fuzz target (corpus/decision/).

The target decodes its input with `arbitrary` 1.x into `Input` (see
fuzz_targets/decision.rs), so a seed is that structure encoded the way
`Unstructured` reads it:

* `bool` and `u8`: one byte from the front (`bool` is `byte & 1`);
* `&str` / `&[u8]`: the content from the front and its length as one byte
  taken from the *end* of the data (as long as the whole input is at most
  256 bytes, which every seed here is);
* `Option<T>`: a bool, then `T` when it is true;
* `Vec<T>`: before each element a bool "one more", then a false;
* an enum: a little-endian `u32` from the front, mapped to a variant by
  `(u32 * variant_count) >> 32`;
* `[u8; N]`: N bytes from the front.

Run it from fuzz/ after changing `Input`, then check a seed with
`cargo fuzz fmt -s none decision corpus/decision/<seed>`.
"""

import os
import ipaddress

VERSIONS = ["1.0", "1.1", "2"]  # HttpVersion
PEERS = ["V4", "V6", "TrustedV4", "MappedV4"]  # Peer


class Encoder:
    def __init__(self):
        self.front = bytearray()
        self.back = bytearray()  # length bytes, in the order they are read

    def bool(self, value):
        self.front.append(1 if value else 0)

    def bytes(self, data):
        if isinstance(data, str):
            data = data.encode()
        assert len(data) < 256
        self.back.append(len(data))
        self.front += data

    def variant(self, index, count):
        step = 2**32 // count
        self.front += (index * step + step // 2).to_bytes(4, "little")

    def raw(self, data):
        self.front += data

    def data(self):
        data = bytes(self.front) + bytes(reversed(self.back))
        assert len(data) <= 256, "lengths would take more than one byte"
        return data


def encode(method, target, host="example.com", second_host=None, headers=(),
           version="1.1", peer=("V4", "192.0.2.10"), lenient=False):
    e = Encoder()
    e.bytes(method)
    e.bytes(target)
    for value in (host, second_host):
        e.bool(value is not None)
        if value is not None:
            e.bytes(value)
    for name, value in headers:
        e.bool(True)
        e.bytes(name)
        e.bytes(value)
    e.bool(False)
    e.variant(VERSIONS.index(version), len(VERSIONS))
    kind, address = peer
    e.variant(PEERS.index(kind), len(PEERS))
    if kind == "TrustedV4":
        e.raw(ipaddress.IPv4Address(address).packed[1:])  # 10.x.y.z
    elif kind == "MappedV4" or kind == "V4":
        e.raw(ipaddress.IPv4Address(address).packed)
    else:
        e.raw(ipaddress.IPv6Address(address).packed)
    e.bool(lenient)
    return e.data()


SEEDS = {
    "get-root": encode("GET", "/"),
    "get-admin-users": encode("GET", "/admin/users"),
    "get-admin-bare": encode("GET", "/admin"),
    "get-admin-trailing-slash": encode("GET", "/admin/"),
    "get-admin-percent-encoded-a": encode("GET", "/%61dmin/x"),
    "get-admin-disguised-dotdot-params": encode("GET", "/assets/../%61dmin;x=1/users"),
    "get-tomcat-dotdot-semicolon-admin": encode("GET", "/assets/..;/admin/users"),
    "get-double-slash-admin": encode("GET", "//admin/x"),
    "absolute-form-admin-from-office": encode(
        "GET", "http://admin.example.com/admin/x", host="admin.example.com",
        peer=("V4", "192.0.2.77")),
    "h2-authority-host-mismatch": encode(
        "GET", "https://a.example.com/x", host="b.example.com", version="2"),
    "h2-authority-only-admin": encode(
        "GET", "https://x.internal.example.com/admin", host=None, version="2"),
    "http10-no-host": encode("GET", "/files/a.pdf", host=None, version="1.0"),
    "duplicate-host": encode("GET", "/", host="example.com", second_host="evil.example.com"),
    "xff-trusted-peer-blocklisted-client": encode(
        "GET", "/", headers=[("x-forwarded-for", "100.64.1.1, 10.0.0.2")],
        peer=("TrustedV4", "10.0.0.1")),
    "xff-untrusted-peer-spoof": encode(
        "GET", "/admin", headers=[("x-forwarded-for", "10.20.0.1")],
        peer=("V4", "198.51.100.7")),
    "xff-ipv6-port-and-garbage": encode(
        "GET", "/", headers=[("X-Forwarded-For", "[2001:db8:bad::1]:4711, nonsense, 10.9.9.9")],
        peer=("TrustedV4", "10.1.2.3")),
    "ipv4-mapped-blocklisted-peer": encode("GET", "/", peer=("MappedV4", "203.0.113.5")),
    "ipv6-blocklisted-peer": encode("GET", "/", peer=("V6", "2001:db8:bad::1")),
    "options-star": encode("OPTIONS", "*"),
    "cors-preflight-admin": encode(
        "OPTIONS", "/admin/x", headers=[("access-control-request-method", "DELETE")]),
    "lowercase-method": encode("get", "/"),
    "trace-method": encode("TRACE", "/api/v1/items"),
    "get-api-glob-items": encode("GET", "/api/v2/items?page=2"),
    "head-files-pdf-glob": encode("HEAD", "/files/report.pdf"),
    "staging-host-wildcard": encode("POST", "/x", host="deep.app.staging.example.com"),
    "host-upper-port-trailing-dot": encode("GET", "/", host="ADMIN.Example.COM.:8080"),
    "host-ipv6-literal": encode("DELETE", "/admin/", host="[::1]:8080", peer=("V6", "::1")),
    "lenient-upper-admin-trailing-dot": encode("GET", "/ADMIN./x", lenient=True),
    "lenient-encoded-slash-dotdot-admin": encode("GET", "/a%2F..%2Fadmin", lenient=True),
    "lenient-encoded-slash-prefix-admin": encode("PUT", "/%2Fadmin/x", lenient=True),
}

if __name__ == "__main__":
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "decision")
    os.makedirs(folder, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(folder, name), "wb") as file:
            file.write(data)
    print(f"wrote {len(SEEDS)} seeds to {folder}")
