//! Loading a config file into a `Config` that can only exist valid.
//!
//! Two layers, as in SPEC §2: `raw` mirrors the TOML with serde (unknown keys are
//! errors), and `compile` turns it into domain types — CIDRs parsed, patterns
//! compiled, files read, indexes built — collecting every error with its
//! `FILE:LINE:COL`. Nothing downstream re-checks what was checked here.

mod compile;
mod duration;
mod error;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};

pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors, Location, SourceFile};

use crate::geoip::GeoIp;
use crate::identity::{IdentityConfig, UpstreamHeaders};
use crate::policy_tests::PolicyTest;
use crate::respond::CustomBodies;
use crate::rules::{IpRangeSet, Policy};

/// A fully validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`: listeners, upstream, limits, timeouts.
    pub server: ServerSettings,
    /// `[policy]` and the rules.
    pub policy: Policy,
    /// `[identity]`: credential sources and lockout.
    pub identity: IdentityConfig,
    /// `[upstream_headers]`.
    pub upstream_headers: UpstreamHeaders,
    /// `[geoip]`: the databases in memory, and which lookups the rules need.
    pub geoip: GeoIp,
    /// `[[test]]` cases, run by `check` and before every start and reload.
    pub tests: Vec<PolicyTest>,
    /// `[log]`.
    pub log: LogSettings,
    /// `[responses]`: custom bodies, already read.
    pub responses: CustomBodies,
    /// Every file this config was built from (the TOML itself, `ip_file`s, response
    /// bodies, GeoIP databases), for `check`'s summary and for reload's file watching.
    pub files: Vec<PathBuf>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Every listener, `listen` first, then `[[server.listener]]` tables.
    pub listeners: Vec<ListenerSettings>,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// `/healthz`, `/readyz`, `/metrics`, never on the main listeners.
    pub admin_listen: Option<SocketAddr>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: IpRangeSet,
    /// Concurrent client connections.
    pub max_connections: usize,
    /// Worker threads; 0 means `TOKIO_WORKER_THREADS`, else one per core.
    pub workers: usize,
    /// Request body limit (413); `None` is unlimited.
    pub max_request_body_bytes: Option<u64>,
    /// Limit on the names and values of all request headers (431).
    pub max_request_header_bytes: usize,
    /// How long in-flight work may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// `[server.timeouts]`.
    pub timeouts: Timeouts,
    /// `[server.tls]`: the certificate for `tls = true` listeners.
    pub tls: Option<TlsSettings>,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Address to bind.
    pub address: SocketAddr,
    /// Terminate TLS with `[server.tls]`.
    pub tls: bool,
    /// Every connection starts with a PROXY protocol header from a trusted proxy: an
    /// L4 balancer in front says who the client is.
    pub proxy_protocol: bool,
}

/// `[server.tls]`, loaded and checked.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The PEM certificate chain file.
    pub cert_file: PathBuf,
    /// The PEM private key file.
    pub key_file: PathBuf,
    /// The parsed chain and key, known to belong together.
    pub certified_key: std::sync::Arc<rustls::sign::CertifiedKey>,
}

/// The upstream as a URL split into the parts forwarding needs.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port to connect to.
    pub authority: Authority,
    /// Path prefix put before every forwarded path, without trailing slash (`""` for none).
    pub base_path: String,
    /// Trust anchors for an `https` upstream (`[upstream_tls] ca_file`, else the system's).
    pub tls_roots: Option<std::sync::Arc<rustls::RootCertStore>>,
}

/// `[server.timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Accept to complete request head (including PROXY header and TLS handshake).
    pub request_header: Duration,
    /// Longest gap between request body bytes.
    pub request_body: Duration,
    /// Connecting to the upstream (then 502).
    pub upstream_connect: Duration,
    /// Waiting for the upstream's response head (then 504).
    pub upstream_response: Duration,
    /// Keep-alive connections without a request in flight.
    pub idle: Duration,
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// One event per request under target `access`.
    pub access_log: bool,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Reads and validates the config at `path`. Relative paths inside it are resolved
/// against its folder.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
        location: Location {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
        },
        key: String::new(),
        message: format!("cannot read the config file: {error}"),
    })?;
    load_text(path, text)
}

/// Reads and validates the config at `path`, then runs its `[[test]]` cases: a config
/// whose cases fail is refused like an invalid one (start, reload and `check`).
pub fn load_and_test(path: &Path) -> Result<Config, ConfigErrors> {
    let config = load(path)?;
    let failures = crate::policy_tests::failures(&config);
    if failures.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(failures))
    }
}

/// Validates config text as if it had been read from `path`.
pub fn load_text(path: &Path, text: String) -> Result<Config, ConfigErrors> {
    let source = SourceFile::new(path, text);
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    compile::compile(&source, &base)
}
