//! The command line (SPEC §1). Exit codes: 0 ok, 1 invalid config or arguments, 2
//! runtime failure.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sha2::{Digest, Sha256};

use crate::config::{self, Config};
use crate::identity::{KeySource, fetch_once};
use crate::rules::{Country, parse_asn};
use crate::{demo, explain, lint, logging, policy_tests, server};

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
    /// Show how a request would be decided: normalized path, client IP, identity, each
    /// rule tried, and the final decision.
    Explain(ExplainArgs),
    /// Start a built-in echo upstream and the proxy with config/demo.toml, and print curl lines to try.
    Demo,
    /// Read an API key on stdin and print the `sha256 = "…"` line for the config.
    HashKey,
}

/// The request `explain` is asked about.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// State the client IP (skips the X-Forwarded-For walk).
    #[arg(long)]
    ip: Option<std::net::IpAddr>,
    /// The connection's peer address.
    #[arg(long, default_value = "192.0.2.1")]
    peer: std::net::IpAddr,
    /// State the client's country (ISO 3166-1 alpha-2, or `--`) instead of the database's.
    #[arg(long, value_parser = |text: &str| Country::parse(text))]
    country: Option<Country>,
    /// State the client's autonomous system number instead of the database's.
    #[arg(long, value_parser = |text: &str| text.parse::<i64>().map_err(|e| e.to_string()).and_then(parse_asn))]
    asn: Option<u32>,
    /// A request header, `Name: value` (repeatable); credentials are verified.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The path (`/admin/users`) or URL (`https://admin.example.com/admin/users`).
    target: String,
}

/// Runs a parsed command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::Check { offline } => check(&cli.config, offline),
        Command::Explain(args) => explain_command(&cli.config, args),
        Command::Demo => demo::main(),
        Command::HashKey => hash_key(),
    }
}

fn load_or_report(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| report(&errors))
}

fn report(errors: &config::ConfigErrors) -> ExitCode {
    for error in &errors.0 {
        eprintln!("{error}");
    }
    ExitCode::from(1)
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match config::load_and_test(path).map_err(|errors| report(&errors)) {
        Ok(config) => config,
        Err(code) => return code,
    };
    logging::init(config.log.format);
    match server::run(path, config) {
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
    let failures = policy_tests::failures(&config);
    if !failures.is_empty() {
        for warning in &warnings {
            eprintln!("{warning}");
        }
        return report(&config::ConfigErrors(failures));
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

fn explain_command(path: &std::path::Path, args: ExplainArgs) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let json = args.json;
    let question = match question(args) {
        Ok(question) => question,
        Err(message) => {
            eprintln!("portcullis explain: {message}");
            return ExitCode::from(1);
        }
    };
    let explained = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())
        .and_then(|runtime| runtime.block_on(explain::explain(&config, &question)));
    match explained {
        Ok(explanation) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&explanation).expect("explanations serialize")
            );
            ExitCode::SUCCESS
        }
        Ok(explanation) => {
            print!("{}", explain::render_text(&explanation));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("portcullis explain: {message}");
            ExitCode::from(2)
        }
    }
}

fn question(args: ExplainArgs) -> Result<explain::Question, String> {
    let method = &args.method;
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not a method"))?;
    let mut map = http::HeaderMap::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("`{header}` is not a header; write it as 'Name: value'"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("bad header name in `{header}`"))?;
        let value = http::HeaderValue::from_str(value.trim()).map_err(|_| format!("bad header value in `{header}`"))?;
        map.append(name, value);
    }
    Ok(explain::Question {
        method,
        target: args.target,
        ip: args.ip,
        peer: args.peer,
        country: args.country,
        asn: args.asn,
        headers: map,
    })
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
        .map(|listener| {
            if listener.tls {
                format!("{} (tls)", listener.address)
            } else {
                listener.address.to_string()
            }
        })
        .collect();
    let upstream = &config.server.upstream;
    format!(
        "{} is valid: {} rule{} ({} CIDR{} in {} index ranges), default {}, mode {}; {} test{} passed;{} listening on {}; forwarding to {}://{}{}; {} file{} read.",
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
        config.tests.len(),
        plural(config.tests.len()),
        geoip_summary(config),
        listeners.join(", "),
        upstream.scheme,
        upstream.authority,
        upstream.base_path,
        config.files.len(),
        plural(config.files.len()),
    )
}

/// ` GeoIP GeoLite2-Country (built 3 days ago), GeoLite2-ASN (...);` or nothing.
fn geoip_summary(config: &Config) -> String {
    let databases: Vec<String> = [config.geoip.country_database(), config.geoip.asn_database()]
        .into_iter()
        .flatten()
        .map(|database| {
            let days = std::time::SystemTime::now()
                .duration_since(database.built())
                .map_or(0, |age| age.as_secs() / 86_400);
            let bytes = database.bytes();
            let size = if bytes < 1_000_000 {
                format!("{} kB", bytes.div_ceil(1_000))
            } else {
                format!("{:.1} MB", bytes as f64 / 1e6)
            };
            format!(
                "{} ({size}, built {days} day{} ago)",
                database.database_type(),
                plural(usize::try_from(days).unwrap_or(usize::MAX))
            )
        })
        .collect();
    if databases.is_empty() {
        String::new()
    } else {
        format!(" GeoIP {};", databases.join(", "))
    }
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
