//! Hot reload (SPEC §8): validate the whole new config (and run its tests) first, then
//! swap it in atomically. A config that fails is logged with its `FILE:LINE:COL`
//! lines, counted, and the old one keeps serving. In-flight requests keep the
//! generation they started with.
//!
//! Reloads come from SIGHUP and from a watcher on the folders of every file the config
//! was built from (folders, not files, so editors that replace files and Kubernetes
//! ConfigMap symlink swaps are seen). Events are debounced, and a reload whose files
//! did not change is skipped.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::{self, Config, ConfigErrors};
use crate::metrics::ReloadLabels;

/// Quiet time after the last file event before a reload is tried.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new config serves new requests; the notes name settings that only take
    /// effect after a restart.
    Applied {
        /// Changed settings that need a restart.
        restart_needed: Vec<String>,
    },
    /// No file the config is built from changed.
    Unchanged,
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config (or one of its `[[test]]` cases) is invalid.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// A resource it needs (a JWKS URL) could not be loaded.
    #[error("{0}")]
    Resources(String),
}

/// The settings a running server cannot change without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RestartSettings {
    listeners: Vec<String>,
    workers: usize,
    admin_listen: Option<std::net::SocketAddr>,
    log_format: config::LogFormat,
}

impl RestartSettings {
    pub(super) fn of(config: &Config) -> Self {
        RestartSettings {
            listeners: config
                .server
                .listeners
                .iter()
                .map(|l| {
                    if l.tls {
                        format!("{} (tls)", l.address)
                    } else {
                        l.address.to_string()
                    }
                })
                .collect(),
            workers: config.server.workers,
            admin_listen: config.server.admin_listen,
            log_format: config.log.format,
        }
    }

    /// The keys whose new values are not applied by a reload.
    pub(super) fn differences(&self, new: &RestartSettings) -> Vec<String> {
        let mut notes = Vec::new();
        if self.listeners != new.listeners {
            notes.push(format!(
                "listeners ({} → {})",
                self.listeners.join(", "),
                new.listeners.join(", ")
            ));
        }
        if self.workers != new.workers {
            notes.push(format!("server.workers ({} → {})", self.workers, new.workers));
        }
        if self.admin_listen != new.admin_listen {
            notes.push(format!(
                "server.admin_listen ({:?} → {:?})",
                self.admin_listen, new.admin_listen
            ));
        }
        if self.log_format != new.log_format {
            notes.push("log.format".to_string());
        }
        notes
    }
}

/// A digest of every file a config was built from, to skip reloads that would change
/// nothing (editors and ConfigMap updates touch folders often).
pub(super) fn fingerprint(files: &[PathBuf]) -> Option<[u8; 32]> {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(file).ok()?);
        hasher.update([0]);
    }
    Some(hasher.finalize().into())
}

impl super::Server {
    /// Reloads the config at `path`. With `force` (SIGHUP), the new config is loaded
    /// even when no file changed.
    pub async fn reload(&self, path: &Path, force: bool) -> Result<ReloadOutcome, ReloadError> {
        let current_files = self.shared.current().config.files.clone();
        let current = fingerprint(&current_files);
        if !force && current.is_some() && current == *self.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(ReloadOutcome::Unchanged);
        }
        let outcome = self.apply(path).await;
        let result = if outcome.is_ok() { "success" } else { "failure" };
        self.shared
            .metrics
            .config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        outcome
    }

    async fn apply(&self, path: &Path) -> Result<ReloadOutcome, ReloadError> {
        let config = config::load_and_test(path).map_err(ReloadError::Invalid)?;
        let new_fingerprint = fingerprint(&config.files);
        let restart_needed = self.restart.differences(&RestartSettings::of(&config));
        let max_connections = config.server.max_connections;
        let generation = crate::state::Generation::build(config, &self.shared.identity)
            .await
            .map_err(ReloadError::Resources)?;
        self.resize_connection_slots(max_connections);
        self.shared.replace(generation);
        *self.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) = new_fingerprint;
        Ok(ReloadOutcome::Applied { restart_needed })
    }

    /// Applies a new `max_connections` to connections accepted from now on.
    fn resize_connection_slots(&self, max_connections: usize) {
        let old = self
            .max_connections
            .swap(max_connections, std::sync::atomic::Ordering::AcqRel);
        if max_connections > old {
            self.slots.add_permits(max_connections - old);
        } else if max_connections < old {
            let slots = std::sync::Arc::clone(&self.slots);
            let surplus = u32::try_from(old - max_connections).unwrap_or(u32::MAX);
            // Take the surplus as connections end, and never give it back.
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(surplus).await {
                    permits.forget();
                }
            });
        }
    }
}

/// Logs a reload's outcome.
pub(super) fn log_outcome(trigger: &str, outcome: &Result<ReloadOutcome, ReloadError>) {
    match outcome {
        Ok(ReloadOutcome::Applied { restart_needed }) => {
            tracing::info!(trigger, "config reloaded");
            for note in restart_needed {
                tracing::warn!(trigger, setting = %note, "changed setting needs a restart; the running value is kept");
            }
        }
        Ok(ReloadOutcome::Unchanged) => tracing::debug!(trigger, "config files unchanged; nothing to reload"),
        Err(ReloadError::Invalid(errors)) => {
            for error in &errors.0 {
                tracing::error!(trigger, "config reload refused: {error}");
            }
            tracing::error!(trigger, "the previous config keeps serving");
        }
        Err(ReloadError::Resources(error)) => {
            tracing::error!(trigger, %error, "config reload refused; the previous config keeps serving");
        }
    }
}

/// Watches the folders of a config's files.
pub(super) struct FileWatcher {
    watcher: RecommendedWatcher,
    folders: BTreeSet<PathBuf>,
    names: Arc<Mutex<HashSet<OsString>>>,
    events: mpsc::UnboundedReceiver<()>,
}

impl FileWatcher {
    pub(super) fn new(files: &[PathBuf]) -> notify::Result<Self> {
        let (sender, events) = mpsc::unbounded_channel();
        let names: Arc<Mutex<HashSet<OsString>>> = Arc::default();
        let relevant = Arc::clone(&names);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let names = relevant.lock().unwrap_or_else(|e| e.into_inner());
            if event.paths.iter().any(|path| is_relevant(path, &names)) {
                let _ = sender.send(());
            }
        })?;
        let mut watcher = FileWatcher {
            watcher,
            folders: BTreeSet::new(),
            names,
            events,
        };
        watcher.watch(files);
        Ok(watcher)
    }

    /// Watches the folders of `files` (after a reload, the new config's files).
    pub(super) fn watch(&mut self, files: &[PathBuf]) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = files
            .iter()
            .filter_map(|file| file.file_name().map(OsString::from))
            .collect();
        let wanted: BTreeSet<PathBuf> = files.iter().map(|file| folder_of(file)).collect();
        for gone in self.folders.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        for folder in wanted.difference(&self.folders) {
            if let Err(error) = self.watcher.watch(folder, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %folder.display(), %error, "cannot watch for config changes; SIGHUP still reloads");
            }
        }
        self.folders = wanted;
    }

    /// Resolves after a burst of file events has gone quiet.
    pub(super) async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        loop {
            match tokio::time::timeout(DEBOUNCE, self.events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    }
}

/// An event matters when it touches one of the config's files by name, or the
/// `..data`-style entries kubelet swaps when a ConfigMap changes. Other files in the
/// same folders (a log file next to the config, say) are ignored.
fn is_relevant(path: &Path, names: &HashSet<OsString>) -> bool {
    path.file_name()
        .is_some_and(|name| names.contains(name) || name.to_string_lossy().starts_with(".."))
}

fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
