//! Soak: 200,000 mixed requests (allowed, denied, hidden, malformed, oversized) over
//! many keep-alive connections against the real binary, checking every decision, that
//! the proxy itself answers no 5xx, and that its memory stays flat.
//!
//! Not part of `cargo test` (it takes a while); run it with
//! `cargo test --release --test soak -- --ignored --nocapture`.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Upstream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const TOTAL: usize = 200_000;
const CONNECTIONS: usize = 64;

/// Each kind of request, and the status it must get.
const MIX: &[(&str, u16)] = &[
    ("GET /public/page HTTP/1.1\r\nHost: a\r\n\r\n", 200),
    ("GET /api/v1/items HTTP/1.1\r\nHost: a\r\n\r\n", 200),
    (
        "POST /api/v1/items HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        200,
    ),
    ("GET /admin/users HTTP/1.1\r\nHost: a\r\n\r\n", 403),
    ("GET /%61dmin/users HTTP/1.1\r\nHost: a\r\n\r\n", 403),
    ("GET /internal/x HTTP/1.1\r\nHost: a\r\n\r\n", 404),
    ("GET /..;/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("GET /%252e/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("DELETE /public/page HTTP/1.1\r\nHost: a\r\n\r\n", 403),
    (
        "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
        403,
    ),
];

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: run with --ignored (see the module docs)"]
async fn two_hundred_thousand_mixed_requests() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\ntrusted_proxies = [\"127.0.0.1\"]\n[log]\naccess_log = false\n\
         [[rule]]\nname = \"blocklist\"\nip = [\"203.0.113.0/24\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"internal\"\npaths = [\"/internal/**\"]\naction = \"deny\"\nhide = true\n\
         [[rule]]\nname = \"admin\"\npaths = [\"/admin/**\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"reads\"\nmethods = [\"GET\"]\naction = \"allow\"\n\
         [[rule]]\nname = \"api\"\npaths = [\"/api/**\"]\nmethods = [\"POST\"]\naction = \"allow\"\n",
        upstream.url()
    );
    let path = dir.path().join("soak.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while TcpStream::connect(address).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let wrong = Arc::new(AtomicUsize::new(0));
    let server_errors = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let run = |count: usize| {
        let (wrong, server_errors, sent) = (Arc::clone(&wrong), Arc::clone(&server_errors), Arc::clone(&sent));
        async move {
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|worker| {
                    let (wrong, server_errors, sent) =
                        (Arc::clone(&wrong), Arc::clone(&server_errors), Arc::clone(&sent));
                    tokio::spawn(async move {
                        let mut stream = TcpStream::connect(address).await.unwrap();
                        for i in 0..count / CONNECTIONS {
                            let (request, expected) = MIX[(worker + i) % MIX.len()];
                            sent.fetch_add(1, Ordering::Relaxed);
                            if stream.write_all(request.as_bytes()).await.is_err() {
                                stream = TcpStream::connect(address).await.unwrap();
                                stream.write_all(request.as_bytes()).await.unwrap();
                            }
                            match common::try_read_response(&mut stream).await {
                                Some(response) => {
                                    if response.status >= 500 {
                                        server_errors.fetch_add(1, Ordering::Relaxed);
                                    }
                                    if response.status != expected {
                                        wrong.fetch_add(1, Ordering::Relaxed);
                                    }
                                    if response.header("connection").as_deref() == Some("close") {
                                        stream = TcpStream::connect(address).await.unwrap();
                                    }
                                }
                                None => {
                                    wrong.fetch_add(1, Ordering::Relaxed);
                                    stream = TcpStream::connect(address).await.unwrap();
                                }
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    // Warm up (pools, allocator arenas), then measure.
    run(CONNECTIONS * 100).await;
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let warmup = sent.load(Ordering::Relaxed);
    run(TOTAL).await;
    let elapsed = started.elapsed();
    let rss_after = rss_kib(pid);
    let measured = sent.load(Ordering::Relaxed) - warmup;
    eprintln!(
        "soak: {measured} requests over {CONNECTIONS} connections in {elapsed:.1?} ({:.0} req/s); wrong decisions {}; proxy 5xx {}; RSS {rss_before} KiB before, {rss_after} KiB after",
        measured as f64 / elapsed.as_secs_f64(),
        wrong.load(Ordering::Relaxed),
        server_errors.load(Ordering::Relaxed),
    );
    assert_eq!(wrong.load(Ordering::Relaxed), 0);
    assert_eq!(server_errors.load(Ordering::Relaxed), 0);
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let _ = child.kill().await;
}
