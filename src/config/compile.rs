//! From the raw serde layer to domain types, collecting every error with its position.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::uri::{Scheme, Uri};
use ipnet::IpNet;
use toml::Spanned;

mod identity;
mod policy_tests;

use super::error::{ConfigError, ConfigErrors, SourceFile, error_at};
use super::raw::{
    RawAction, RawConfig, RawEscapedSlashes, RawGeoIp, RawLogFormat, RawMode, RawRule, RawServer, RawTimeouts, RawTls,
    RawUpstreamTls,
};
use super::{
    Config, ListenerSettings, LogFormat, LogSettings, ServerSettings, Timeouts, TlsSettings, Upstream, parse_duration,
};
use crate::geoip::{self, Database, GeoIp};
use crate::identity::IdentityConfig;
use crate::path::{self, EscapedSlashes, PathOptions};
use crate::respond::CustomBodies;
use crate::rules::{
    Action, Country, Gate, HostPattern, IpRangeSet, Mode, PathPattern, Policy, Rule, RuleSet, Selectors, parse_asn,
    parse_cidr, parse_method,
};

/// Collects errors while compiling, so one run reports all of them.
struct Compiler<'a> {
    source: &'a SourceFile,
    base: &'a Path,
    errors: Vec<ConfigError>,
    files: Vec<PathBuf>,
}

impl Compiler<'_> {
    fn error<T>(&mut self, spanned: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.errors.push(self.source.error(spanned.span(), key, message));
    }

    /// Runs `parse` on a spanned value, recording its error at the value's position.
    fn check<T, U>(
        &mut self,
        spanned: &Spanned<T>,
        key: &str,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        match parse(spanned.get_ref()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(spanned, key, message);
                None
            }
        }
    }

    fn resolve(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }

    fn read_file(&mut self, spanned: &Spanned<String>, key: &str) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.resolve(spanned.get_ref());
        match std::fs::read(&path) {
            Ok(bytes) => {
                self.files.push(path.clone());
                Some((path, bytes))
            }
            Err(error) => {
                self.error(spanned, key, format!("cannot read `{}`: {error}", path.display()));
                None
            }
        }
    }
}

pub(super) fn compile(source: &SourceFile, base: &Path) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = toml::from_str(source.text()).map_err(|error| syntax_error(source, &error))?;
    let mut compiler = Compiler {
        source,
        base,
        errors: Vec::new(),
        files: vec![source.path().to_path_buf()],
    };
    let server_span = raw.server.span();
    let server = compile_server(
        &mut compiler,
        raw.server.into_inner(),
        server_span,
        raw.upstream_tls.as_ref(),
    );
    let path_options = PathOptions {
        escaped_slashes: match raw.policy.escaped_slashes {
            Some(RawEscapedSlashes::Keep) => EscapedSlashes::Keep,
            Some(RawEscapedSlashes::Reject) | None => EscapedSlashes::Reject,
        },
        merge_slashes: raw.policy.merge_slashes.unwrap_or(true),
        case_insensitive: raw.policy.case_insensitive_paths.unwrap_or(false),
    };
    let default_hide = raw.policy.hide.unwrap_or(false);
    let identity = identity::compile_identity(&mut compiler, raw.identity);
    let upstream_headers = identity::compile_upstream_headers(&mut compiler, &raw.upstream_headers);
    let databases = compile_geoip(&mut compiler, raw.geoip.as_ref());
    let rules = compile_rules(
        &mut compiler,
        raw.rules,
        &RuleContext {
            path_options: &path_options,
            default_hide,
            identity: &identity,
            geoip: raw.geoip.as_ref(),
        },
    );
    let rule_names: std::collections::HashSet<&str> = rules.iter().flatten().map(|rule| rule.name.as_str()).collect();
    let tests = policy_tests::compile_tests(&mut compiler, raw.tests, &rule_names);
    let responses = compile_responses(&mut compiler, raw.responses);
    let log = LogSettings {
        format: match raw.log.format {
            Some(RawLogFormat::Json) => LogFormat::Json,
            Some(RawLogFormat::Text) | None => LogFormat::Text,
        },
        access_log: raw.log.access_log.unwrap_or(true),
    };
    if !compiler.errors.is_empty() {
        return Err(ConfigErrors(compiler.errors));
    }
    let (Some(server), Some(rules), Some(responses), Some(databases)) = (server, rules, responses, databases) else {
        unreachable!("every compile step that returns None records an error");
    };
    let rules = RuleSet::new(rules);
    Ok(Config {
        server,
        geoip: GeoIp::new(databases.country, databases.asn, &rules),
        policy: Policy {
            rules,
            default_action: action(raw.policy.default.unwrap_or(RawAction::Deny)),
            default_hide,
            mode: match raw.policy.mode {
                Some(RawMode::Audit) => Mode::Audit,
                Some(RawMode::Enforce) | None => Mode::Enforce,
            },
            path_options,
            explain_denials: raw.policy.explain_denials.unwrap_or(false),
            allow_preflight: raw.policy.allow_preflight.unwrap_or(false),
            challenge: !identity.only_trusted_headers(),
        },
        identity,
        upstream_headers,
        tests,
        log,
        responses,
        files: compiler.files,
    })
}

fn action(raw: RawAction) -> Action {
    match raw {
        RawAction::Allow => Action::Allow,
        RawAction::Deny => Action::Deny,
    }
}

/// A TOML syntax or type error, with the dotted key it happened under when that can be
/// worked out from the text.
fn syntax_error(source: &SourceFile, error: &toml::de::Error) -> ConfigErrors {
    let span = error.span().unwrap_or(0..0);
    let key = key_at(source.text(), span.start);
    source.error(span, key, error.message().trim().to_string()).into()
}

/// The dotted key whose line holds `offset`: the last `[table]` header before it plus
/// the key on that line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|header| header.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_string())
        .filter(|key| !key.starts_with('['));
    match (table, key) {
        (Some(table), Some(key)) => format!("{table}.{key}"),
        (Some(table), None) => table,
        (None, Some(key)) => key,
        (None, None) => String::new(),
    }
}

/// A listener as written: its address, the key it came from, `tls`, `proxy_protocol`.
type ListenerEntry<'k> = (Spanned<String>, &'k str, bool, Option<Spanned<bool>>);

fn compile_server(
    c: &mut Compiler<'_>,
    raw: RawServer,
    span: std::ops::Range<usize>,
    upstream_tls: Option<&Spanned<RawUpstreamTls>>,
) -> Option<ServerSettings> {
    let mut listeners = Vec::new();
    let mut seen = HashSet::new();
    let mut addresses: Vec<ListenerEntry> = raw
        .listen
        .map(|listen| {
            let span = listen.span();
            listen
                .into_inner()
                .into_vec()
                .into_iter()
                .map(move |address| (Spanned::new(span.clone(), address), "server.listen", false, None))
                .collect()
        })
        .unwrap_or_default();
    addresses.extend(raw.listeners.into_iter().map(|listener| {
        let listener = listener.into_inner();
        let tls = listener.tls.as_ref().is_some_and(|tls| *tls.get_ref());
        (
            listener.address,
            "server.listener.address",
            tls,
            listener.proxy_protocol,
        )
    }));
    for (address, key, tls, proxy_protocol) in &addresses {
        let Some(parsed) = c.check(address, key, |text| parse_socket_address(text)) else {
            continue;
        };
        // Port 0 (an ephemeral port, for tests) binds a different port each time.
        if parsed.port() != 0 && !seen.insert(parsed) {
            c.error(address, key, format!("`{parsed}` is listed twice"));
            continue;
        }
        let proxy_protocol_on = proxy_protocol.as_ref().is_some_and(|on| *on.get_ref());
        if let Some(flag) = proxy_protocol
            .as_ref()
            .filter(|_| proxy_protocol_on && raw.trusted_proxies.is_empty())
        {
            c.error(
                flag,
                "server.listener.proxy_protocol",
                "needs `server.trusted_proxies`: only trusted proxies may send a PROXY header, so this listener could serve nobody",
            );
        }
        listeners.push(ListenerSettings {
            address: parsed,
            tls: *tls,
            proxy_protocol: proxy_protocol_on,
        });
    }
    let tls = compile_tls(c, raw.tls.as_ref(), &listeners, &span);
    if addresses.is_empty() {
        c.errors.push(c.source.error(
            span.clone(),
            "server.listen",
            "no listener: set `listen = \"127.0.0.1:8080\"` or add a [[server.listener]] table",
        ));
    }
    let upstream = c
        .check(&raw.upstream, "server.upstream", |text| parse_upstream(text))
        .and_then(|upstream| with_upstream_tls(c, upstream, &raw.upstream, upstream_tls));
    let admin_listen = raw
        .admin_listen
        .as_ref()
        .and_then(|address| c.check(address, "server.admin_listen", |text| parse_socket_address(text)));
    if let Some(admin) = admin_listen
        && seen.contains(&admin)
    {
        let spanned = raw.admin_listen.as_ref().expect("admin_listen was parsed from it");
        c.error(
            spanned,
            "server.admin_listen",
            "the admin listener must not share an address with a main listener",
        );
    }
    let trusted: Vec<IpNet> = raw
        .trusted_proxies
        .iter()
        .filter_map(|cidr| c.check(cidr, "server.trusted_proxies", |text| parse_cidr(text)))
        .collect();
    let max_connections = match &raw.max_connections {
        Some(value) if *value.get_ref() == 0 => {
            c.error(value, "server.max_connections", "must be at least 1");
            None
        }
        Some(value) => Some(usize::try_from(*value.get_ref()).unwrap_or(usize::MAX)),
        None => Some(10_000),
    };
    let max_request_header_bytes = match &raw.max_request_header_bytes {
        Some(value) if *value.get_ref() < 1024 => {
            c.error(value, "server.max_request_header_bytes", "must be at least 1024");
            None
        }
        Some(value) => Some(usize::try_from(*value.get_ref()).unwrap_or(usize::MAX)),
        None => Some(32 * 1024),
    };
    let shutdown_grace = duration_or(
        c,
        raw.shutdown_grace.as_ref(),
        "server.shutdown_grace",
        Duration::from_secs(30),
    );
    let timeouts = compile_timeouts(c, &raw.timeouts);
    Some(ServerSettings {
        listeners,
        upstream: upstream?,
        admin_listen,
        trusted_proxies: IpRangeSet::new(trusted),
        max_connections: max_connections?,
        workers: usize::try_from(raw.workers.unwrap_or(0)).unwrap_or(usize::MAX),
        max_request_body_bytes: raw.max_request_body_bytes.filter(|&limit| limit > 0),
        max_request_header_bytes: max_request_header_bytes?,
        shutdown_grace: shutdown_grace?,
        timeouts: timeouts?,
        tls: tls?,
    })
}

/// `[server.tls]`: required by `tls = true` listeners, pointless without one. The
/// certificate and key are read and checked to belong together now, so a bad pair is a
/// config error (at start, or a refused reload that keeps the old certificate).
fn compile_tls(
    c: &mut Compiler<'_>,
    raw: Option<&Spanned<RawTls>>,
    listeners: &[ListenerSettings],
    server_span: &std::ops::Range<usize>,
) -> Option<Option<TlsSettings>> {
    let wants_tls = listeners.iter().any(|listener| listener.tls);
    let Some(raw) = raw else {
        if wants_tls {
            c.errors.push(c.source.error(
                server_span.clone(),
                "server.tls",
                "a listener has `tls = true` but there is no [server.tls] with cert_file and key_file",
            ));
            return None;
        }
        return Some(None);
    };
    if !wants_tls {
        c.error(
            raw,
            "server.tls",
            "no listener uses it; add a [[server.listener]] with `tls = true`",
        );
        return None;
    }
    let tls = raw.get_ref();
    let cert = c.read_file(&tls.cert_file, "server.tls.cert_file");
    let key = c.read_file(&tls.key_file, "server.tls.key_file");
    let ((cert_file, cert), (key_file, key)) = (cert?, key?);
    match crate::tls::certified_key(&cert, &key) {
        Ok(certified_key) => Some(Some(TlsSettings {
            cert_file,
            key_file,
            certified_key: std::sync::Arc::new(certified_key),
        })),
        Err(message) => {
            c.error(&tls.cert_file, "server.tls", message);
            None
        }
    }
}

/// `[upstream_tls]` goes with an `https` upstream: its CA file, or the system's roots.
fn with_upstream_tls(
    c: &mut Compiler<'_>,
    mut upstream: Upstream,
    spanned: &Spanned<String>,
    raw: Option<&Spanned<RawUpstreamTls>>,
) -> Option<Upstream> {
    if upstream.scheme != Scheme::HTTPS {
        if let Some(raw) = raw {
            c.error(
                raw,
                "upstream_tls",
                "the upstream is plain http://; [upstream_tls] only applies to https://",
            );
            return None;
        }
        return Some(upstream);
    }
    let ca = match raw.and_then(|raw| raw.get_ref().ca_file.as_ref()) {
        Some(file) => Some((file, c.read_file(file, "upstream_tls.ca_file")?.1)),
        None => None,
    };
    match crate::tls::upstream_roots(ca.as_ref().map(|(_, pem)| pem.as_slice())) {
        Ok(roots) => {
            upstream.tls_roots = Some(std::sync::Arc::new(roots));
            Some(upstream)
        }
        Err(message) => {
            match ca {
                Some((file, _)) => c.error(file, "upstream_tls.ca_file", message),
                None => c.error(spanned, "server.upstream", message),
            }
            None
        }
    }
}

fn duration_or(
    c: &mut Compiler<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Option<Duration> {
    match value {
        Some(text) => c.check(text, key, |text| parse_duration(text)),
        None => Some(default),
    }
}

fn compile_timeouts(c: &mut Compiler<'_>, raw: &RawTimeouts) -> Option<Timeouts> {
    let mut positive = |value: Option<&Spanned<String>>, key: &str, default: u64| {
        let duration = duration_or(c, value, key, Duration::from_secs(default))?;
        if duration.is_zero() {
            let spanned = value.expect("the default is not zero");
            c.error(spanned, key, "must be longer than zero");
            return None;
        }
        Some(duration)
    };
    let request_header = positive(raw.request_header.as_ref(), "server.timeouts.request_header", 10);
    let request_body = positive(raw.request_body.as_ref(), "server.timeouts.request_body", 30);
    let upstream_connect = positive(raw.upstream_connect.as_ref(), "server.timeouts.upstream_connect", 5);
    let upstream_response = positive(raw.upstream_response.as_ref(), "server.timeouts.upstream_response", 60);
    let idle = positive(raw.idle.as_ref(), "server.timeouts.idle", 60);
    Some(Timeouts {
        request_header: request_header?,
        request_body: request_body?,
        upstream_connect: upstream_connect?,
        upstream_response: upstream_response?,
        idle: idle?,
    })
}

fn parse_socket_address(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not an address with a port; write it like \"127.0.0.1:8080\" or \"[::1]:8080\"")
    })
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri: Uri = text.parse().map_err(|_| {
        format!("`{text}` is not a URL; write it like \"http://127.0.0.1:3000\" or \"http://app:3000/base\"")
    })?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => return Err(format!("`{text}` must start with http:// or https://")),
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{text}`: credentials in the upstream URL are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{text}`: the upstream URL must not have a query string"));
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    if !base_path.is_empty() {
        let normalized = path::normalize(&base_path, &PathOptions::default())
            .map_err(|error| format!("`{text}`: the base path is not usable: {error}"))?;
        if normalized.forwarded != base_path {
            return Err(format!(
                "`{text}`: write the base path in its canonical form `{}`",
                normalized.forwarded
            ));
        }
    }
    Ok(Upstream {
        scheme,
        authority,
        base_path,
        tls_roots: None,
    })
}

/// What compiling a rule needs from the rest of the config.
struct RuleContext<'a> {
    path_options: &'a PathOptions,
    default_hide: bool,
    identity: &'a IdentityConfig,
    geoip: Option<&'a RawGeoIp>,
}

fn compile_rules(
    c: &mut Compiler<'_>,
    raw_rules: Vec<Spanned<RawRule>>,
    context: &RuleContext<'_>,
) -> Option<Vec<Rule>> {
    let path_options = context.path_options;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::new();
    let errors_before = c.errors.len();
    for spanned in raw_rules {
        let origin = c.source.location(spanned.span().start);
        let raw = spanned.into_inner();
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            c.error(&raw.name, "rule.name", "a rule needs a non-empty name");
        } else if let Some(line) = names.insert(name.clone(), origin.line) {
            c.error(
                &raw.name,
                "rule.name",
                format!("rule name `{name}` is already used by the rule at line {line}"),
            );
        }
        let key = |field: &str| format!("rule \"{name}\".{field}");
        let ips = compile_ips(c, &raw, &key("ip"));
        let (countries, asns) = compile_location_selectors(c, &raw, &name, context.geoip);
        let methods = raw
            .methods
            .as_ref()
            .map(|list| compile_list(c, list, &key("methods"), "methods", |text| parse_method(text)));
        let hosts = raw
            .hosts
            .as_ref()
            .map(|list| compile_list(c, list, &key("hosts"), "hosts", |text| HostPattern::parse(text)));
        let paths = raw.paths.as_ref().map(|list| {
            compile_list(c, list, &key("paths"), "paths", |text| {
                PathPattern::parse(text, path_options)
            })
        });
        let gate = compile_gate(c, &raw, &name, context.identity);
        rules.push(Rule {
            name,
            action: action(*raw.action.get_ref()),
            hide: raw.hide.unwrap_or(context.default_hide),
            audit: raw.audit.unwrap_or(false),
            gate,
            selectors: Selectors {
                ips,
                countries,
                asns,
                methods,
                hosts,
                paths,
            },
            origin: format!("{}:{}", origin.file.display(), origin.line),
        });
    }
    (c.errors.len() == errors_before).then_some(rules)
}

/// The `[geoip]` databases, before the rules say which lookups they need.
struct Databases {
    country: Option<Arc<Database>>,
    asn: Option<Arc<Database>>,
}

/// `[geoip]`: each database read into memory and checked. `None` when one could not
/// be (the error is recorded).
fn compile_geoip(c: &mut Compiler<'_>, raw: Option<&RawGeoIp>) -> Option<Databases> {
    let Some(raw) = raw else {
        return Some(Databases {
            country: None,
            asn: None,
        });
    };
    let country = open_database(
        c,
        raw.country_database.as_ref(),
        "geoip.country_database",
        geoip::Kind::Country,
    );
    let asn = open_database(c, raw.asn_database.as_ref(), "geoip.asn_database", geoip::Kind::Asn);
    Some(Databases {
        country: country?,
        asn: asn?,
    })
}

/// `Some(None)` when the key is absent, `None` when the file is unusable.
fn open_database(
    c: &mut Compiler<'_>,
    file: Option<&Spanned<String>>,
    key: &str,
    kind: geoip::Kind,
) -> Option<Option<Arc<Database>>> {
    let Some(file) = file else { return Some(None) };
    let path = c.resolve(file.get_ref());
    match geoip::open(&path, kind) {
        Ok(database) => {
            c.files.push(path);
            Some(Some(database))
        }
        Err(message) => {
            c.error(file, key, message);
            None
        }
    }
}

/// `countries` and `asns`, each needing its `[geoip]` database: without one the
/// selector could only ever see `--` (or no ASN), which is never what was meant.
fn compile_location_selectors(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    name: &str,
    geoip: Option<&RawGeoIp>,
) -> (Option<Vec<Country>>, Option<Vec<u32>>) {
    let countries = raw.countries.as_ref().map(|list| {
        let key = format!("rule \"{name}\".countries");
        if geoip.is_none_or(|geoip| geoip.country_database.is_none()) {
            c.error(list, &key, "`countries` needs `[geoip] country_database`");
        }
        compile_list(c, list, &key, "countries", |text| Country::parse(text))
    });
    let asns = raw.asns.as_ref().map(|list| {
        let key = format!("rule \"{name}\".asns");
        if geoip.is_none_or(|geoip| geoip.asn_database.is_none()) {
            c.error(list, &key, "`asns` needs `[geoip] asn_database`");
        }
        compile_list(c, list, &key, "asns", |number| parse_asn(*number))
    });
    (countries, asns)
}

/// `roles` / `authenticated`: only on allow rules, and only when some identity source
/// is configured (otherwise the rule could never let anyone in).
fn compile_gate(c: &mut Compiler<'_>, raw: &RawRule, name: &str, identity: &IdentityConfig) -> Option<Gate> {
    let gate = match (&raw.roles, &raw.authenticated) {
        (Some(roles), _) => {
            if roles.get_ref().is_empty() || roles.get_ref().iter().any(String::is_empty) {
                c.error(
                    roles,
                    &format!("rule \"{name}\".roles"),
                    "list the roles that may pass, or remove the key",
                );
            }
            Some((roles.span(), Gate::AnyRole(roles.get_ref().clone())))
        }
        (None, Some(authenticated)) if *authenticated.get_ref() => Some((authenticated.span(), Gate::Authenticated)),
        (None, _) => None,
    };
    let (span, gate) = gate?;
    let key = format!("rule \"{name}\"");
    if *raw.action.get_ref() == RawAction::Deny {
        c.errors.push(c.source.error(
            span,
            key,
            "`roles` and `authenticated` only go on allow rules (a deny rule denies everyone it matches)",
        ));
    } else if !identity.has_sources() {
        c.errors.push(c.source.error(
            span,
            key,
            "this rule needs an identity, but no [identity] source (api_keys, basic, jwt, trusted_headers) is configured",
        ));
    }
    Some(gate)
}

/// A selector list: an empty one is an error (it would match nothing), and each entry
/// is parsed with its error at the entry.
fn compile_list<T, U>(
    c: &mut Compiler<'_>,
    list: &Spanned<Vec<Spanned<T>>>,
    key: &str,
    what: &str,
    parse: impl Fn(&T) -> Result<U, String>,
) -> Vec<U> {
    non_empty(c, list, key, what);
    list.get_ref()
        .iter()
        .filter_map(|entry| c.check(entry, key, &parse))
        .collect()
}

fn non_empty<T>(c: &mut Compiler<'_>, list: &Spanned<Vec<T>>, key: &str, what: &str) {
    if list.get_ref().is_empty() {
        c.error(
            list,
            key,
            format!("an empty `{what}` list matches nothing; remove the key to match any {what}"),
        );
    }
}

/// `ip` and `ip_file` together; `None` when the rule has neither.
fn compile_ips(c: &mut Compiler<'_>, raw: &RawRule, key: &str) -> Option<Vec<IpNet>> {
    if raw.ip.is_none() && raw.ip_file.is_none() {
        return None;
    }
    let mut nets = Vec::new();
    if let Some(list) = &raw.ip {
        if list.get_ref().is_empty() && raw.ip_file.is_none() {
            non_empty(c, list, key, "ip");
        }
        nets.extend(
            list.get_ref()
                .iter()
                .filter_map(|cidr| c.check(cidr, key, |text| parse_cidr(text))),
        );
    }
    if let Some(file) = &raw.ip_file {
        let file_key = format!("{}_file", key);
        if let Some((path, bytes)) = c.read_file(file, &file_key) {
            match String::from_utf8(bytes) {
                Ok(text) => match parse_ip_file(&path, &text, &file_key) {
                    Ok(parsed) => nets.extend(parsed),
                    Err(errors) => c.errors.extend(errors),
                },
                Err(_) => c.error(file, &file_key, format!("`{}` is not UTF-8 text", path.display())),
            }
        }
    }
    Some(nets)
}

/// One address or CIDR per line, `#` comments, blank lines ignored. Errors point at
/// the file's own line and column.
pub(crate) fn parse_ip_file(path: &Path, text: &str, key: &str) -> Result<Vec<IpNet>, Vec<ConfigError>> {
    let mut nets = Vec::with_capacity(text.len() / 16);
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default();
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        match parse_cidr(entry) {
            Ok(net) => nets.push(net),
            Err(message) => {
                let column = content.len() - content.trim_start().len() + 1;
                errors.push(error_at(path, index + 1, column, key, message));
            }
        }
    }
    if errors.is_empty() { Ok(nets) } else { Err(errors) }
}

fn compile_responses(
    c: &mut Compiler<'_>,
    raw: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
) -> Option<CustomBodies> {
    let mut bodies = CustomBodies::default();
    let errors_before = c.errors.len();
    for (status_text, file) in raw {
        let key = format!("responses.\"{}\"", status_text.get_ref());
        let Some(status) = c.check(&status_text, &key, |text| parse_custom_status(text)) else {
            continue;
        };
        if let Some((path, bytes)) = c.read_file(&file, &key) {
            bodies.insert(status, content_type_for(&path), bytes.into());
        }
    }
    (c.errors.len() == errors_before).then_some(bodies)
}

fn parse_custom_status(text: &str) -> Result<StatusCode, String> {
    const WRITTEN: [u16; 10] = [400, 401, 403, 404, 413, 429, 431, 502, 503, 504];
    text.parse::<u16>()
        .ok()
        .filter(|code| WRITTEN.contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| {
            format!("`{text}` is not a status portcullis writes; use one of 400, 401, 403, 404, 413, 429, 431, 502, 503, 504")
        })
}

fn content_type_for(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests;
