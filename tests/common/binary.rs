//! The binary as an operator runs it: a config file, stderr logs in a file, signals.
//! Only tests that need the process itself (reload, signals, logs) use this; the rest
//! start the server in-process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A port nothing listens on right now, for configs that must name their address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary running a config file, with its stderr (the logs) in a file.
pub struct Running {
    pub child: Child,
    pub proxy: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    pub log: PathBuf,
}

impl Running {
    pub async fn start(dir: &Path, config: &Path) -> Running {
        let log = dir.join("portcullis.log");
        let child = Command::new(BIN)
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let text = std::fs::read_to_string(config).unwrap();
        let address = |key: &str| -> std::net::SocketAddr {
            let line = text.lines().find(|l| l.starts_with(key)).unwrap();
            line.split('"').nth(1).unwrap().parse().unwrap()
        };
        let running = Running {
            child,
            proxy: address("listen"),
            admin: address("admin_listen"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while running.admin_get("/readyz").await.map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the binary did not become ready:\n{}",
                running.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running
    }

    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        tokio::net::TcpStream::connect(self.admin).await.ok()?;
        let response = super::raw_exchange(
            self.admin,
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        Some((response.status, response.body_text()))
    }

    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.unwrap().1
    }

    pub async fn get(&self, path: &str) -> u16 {
        super::raw_exchange(
            self.proxy,
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .status
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub async fn wait_for(&self, what: &str, mut condition: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Keeps sending `request` over keep-alive connections until stopped, counting requests
/// and the responses other than 200 and 403 (the two valid answers across a reload).
pub fn request_stream(
    proxy: std::net::SocketAddr,
    request: &'static [u8],
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let (failed, counted) = (Arc::clone(&failures), Arc::clone(&total));
    let task = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
        while !stop.load(Ordering::SeqCst) {
            use tokio::io::AsyncWriteExt;
            if stream.write_all(request).await.is_err() {
                failed.fetch_add(1, Ordering::SeqCst);
                stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
                continue;
            }
            counted.fetch_add(1, Ordering::SeqCst);
            match super::try_read_response(&mut stream).await {
                Some(response) if response.status == 200 || response.status == 403 => {}
                _ => {
                    failed.fetch_add(1, Ordering::SeqCst);
                    stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
                }
            }
        }
    });
    (task, failures, total)
}
