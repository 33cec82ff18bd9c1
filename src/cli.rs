//! The command line (SPEC §1). Exit codes: 0 ok, 1 invalid config or arguments, 2
//! runtime failure.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

use crate::config::{self, Config};
use crate::identity::{KeySource, fetch_once};
use crate::{demo, lint, logging, server};

/// portcullis: an HTTP reverse proxy that enforces access rules.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "portcullis.toml"
    )]
    pub config: PathBuf,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve with the config.
    Run,
    /// Validate the config and everything it references; print a summary and warnings.
    Check {
        /// A `jwks_url` that cannot be fetched is a warning instead of an error.
        #[arg(long)]
        offline: bool,
    },
    /// Start a built-in echo upstream and the proxy with config/demo.toml, and print curl lines to try.
    Demo,
    /// Read an API key on stdin and print the `sha256 = "…"` line for the config.
    HashKey,
}

/// Runs a parsed command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::Check { offline } => check(&cli.config, offline),
        Command::Demo => demo::main(),
        Command::HashKey => hash_key(),
    }
}

fn load_or_report(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        for error in &errors.0 {
            eprintln!("{error}");
        }
        ExitCode::from(1)
    })
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    logging::init(config.log.format);
    match server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "portcullis stopped");
            eprintln!("portcullis: {error}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &std::path::Path, offline: bool) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut warnings: Vec<String> = lint::warnings(&config).iter().map(ToString::to_string).collect();
    if let Some(jwt) = &config.identity.jwt
        && let KeySource::Url { url, .. } = &jwt.keys
        && let Err(error) = fetch_jwks(url)
    {
        let line = format!("{}: identity.jwt.jwks_url: {error}", jwt.origin);
        if !offline {
            eprintln!("{line}");
            return ExitCode::from(1);
        }
        warnings.push(format!("{line} (warning: --offline)"));
    }
    println!("{}", summary(path, &config));
    for warning in warnings {
        println!("{warning}");
    }
    ExitCode::SUCCESS
}

/// Fetches a JWKS once, as a start would, on a small runtime of its own.
fn fetch_jwks(url: &http::Uri) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(fetch_once(url)).map(drop)
}

/// The one-paragraph summary `check` prints for a valid config.
pub fn summary(path: &std::path::Path, config: &Config) -> String {
    let rules = config.policy.rules.rules();
    let cidrs: usize = rules
        .iter()
        .filter_map(|rule| rule.selectors.ips.as_ref())
        .map(Vec::len)
        .sum();
    let listeners: Vec<String> = config
        .server
        .listeners
        .iter()
        .map(|listener| listener.address.to_string())
        .collect();
    let upstream = &config.server.upstream;
    format!(
        "{} is valid: {} rule{} ({} CIDR{} in {} index ranges), default {}, mode {}; listening on {}; forwarding to {}://{}{}; {} file{} read.",
        path.display(),
        rules.len(),
        plural(rules.len()),
        cidrs,
        plural(cidrs),
        config.policy.rules.cidr_boundaries(),
        match config.policy.default_action {
            crate::rules::Action::Allow => "allow",
            crate::rules::Action::Deny => "deny",
        },
        match config.policy.mode {
            crate::rules::Mode::Enforce => "enforce",
            crate::rules::Mode::Audit => "audit",
        },
        listeners.join(", "),
        upstream.scheme,
        upstream.authority,
        upstream.base_path,
        config.files.len(),
        plural(config.files.len()),
    )
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Hashes a key read from stdin. One trailing newline (as `echo` adds) is not part of
/// the key.
fn hash_key() -> ExitCode {
    let mut input = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("portcullis: cannot read the key from stdin: {error}");
        return ExitCode::from(1);
    }
    let key = input
        .strip_suffix('\n')
        .map_or(input.as_str(), |k| k.strip_suffix('\r').unwrap_or(k));
    if key.is_empty() {
        eprintln!("portcullis: no key on stdin; try: printf %s \"$KEY\" | portcullis hash-key");
        return ExitCode::from(1);
    }
    println!("sha256 = \"{}\"", hex::encode(Sha256::digest(key.as_bytes())));
    ExitCode::SUCCESS
}
