//! The Prometheus registry (SPEC §8). It lives outside any one config, so counters
//! keep counting across reloads; the admin listener encodes it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `portcullis_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `allow`, `deny` or `audit`.
    pub decision: &'static str,
    /// The status sent to the client.
    pub status: u16,
    /// The deciding rule, `""` when none matched.
    pub rule: String,
}

/// Labels of `portcullis_upstream_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// `connect`, `timeout` or `other`.
    pub kind: &'static str,
}

/// Labels of `portcullis_geoip_database_build_timestamp_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GeoIpLabels {
    /// `country` or `asn`.
    pub database: &'static str,
}

/// Labels of `portcullis_proxy_protocol_rejected_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyProtocolLabels {
    /// `untrusted`, `malformed`, `truncated` or `timeout`.
    pub reason: &'static str,
}

/// Labels of `portcullis_config_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// The `portcullis_requests_total` counters one config generation has used, by
/// (decision, status, rule id), so counting a request is a read lock and an atomic
/// increment rather than hashing and allocating label strings. The counters are the
/// registry's own (shared by clone), so nothing is lost when a generation ends.
#[derive(Debug, Default)]
pub struct RequestCounters {
    counters: std::sync::RwLock<rustc_hash::FxHashMap<CounterKey, Counter>>,
}

/// (decision, status, rule id).
type CounterKey = (&'static str, u16, Option<usize>);

impl RequestCounters {
    /// Counts one request; `rule_name` is asked for only the first time a combination
    /// is seen.
    pub fn increment(
        &self,
        metrics: &Metrics,
        decision: &'static str,
        status: u16,
        rule: Option<usize>,
        rule_name: impl FnOnce() -> String,
    ) {
        let key = (decision, status, rule);
        if let Some(counter) = self.counters.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            counter.inc();
            return;
        }
        let labels = RequestLabels {
            decision,
            status,
            rule: rule_name(),
        };
        let counter = metrics.requests.get_or_create(&labels).clone();
        counter.inc();
        self.counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, counter);
    }
}

/// Every metric portcullis exports, registered once per process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by decision, status and rule.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request head to response head.
    pub request_duration: Histogram,
    /// Upstream failures by kind.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Config reloads by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// Client connections currently open.
    pub active_connections: Gauge,
    /// Clients banned by `[identity.lockout]`.
    pub lockout_bans: Counter,
    /// Connections closed on a `proxy_protocol` listener before their first request.
    pub proxy_protocol_rejected: Family<ProxyProtocolLabels, Counter>,
    /// When the serving GeoIP databases were built, so a stalled update can alert.
    pub geoip_database_built: Family<GeoIpLabels, Gauge>,
}

impl Metrics {
    /// Publishes the build time of each database `geoip` serves (0 for one that is
    /// not configured).
    pub fn set_geoip(&self, geoip: &crate::geoip::GeoIp) {
        let seconds = |database: Option<&crate::geoip::Database>| {
            database.map_or(0, |database| {
                database
                    .built()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
            })
        };
        for (database, built) in [
            ("country", seconds(geoip.country_database())),
            ("asn", seconds(geoip.asn_database())),
        ] {
            self.geoip_database_built
                .get_or_create(&GeoIpLabels { database })
                .set(built);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "portcullis_requests",
            "Requests by decision, status and deciding rule",
            requests.clone(),
        );
        let request_duration = Histogram::new(exponential_buckets(0.0001, 2.5, 14));
        registry.register(
            "portcullis_request_duration_seconds",
            "Time from receiving a request head to sending the response head",
            request_duration.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "portcullis_upstream_errors",
            "Failed upstream requests by kind",
            upstream_errors.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "portcullis_config_reloads",
            "Config reloads by result",
            config_reloads.clone(),
        );
        let active_connections = Gauge::default();
        registry.register(
            "portcullis_active_connections",
            "Open client connections",
            active_connections.clone(),
        );
        let lockout_bans = Counter::default();
        registry.register(
            "portcullis_lockout_bans",
            "Clients banned after repeated failed credentials",
            lockout_bans.clone(),
        );
        let proxy_protocol_rejected = Family::<ProxyProtocolLabels, Counter>::default();
        registry.register(
            "portcullis_proxy_protocol_rejected",
            "Connections closed for a missing, malformed or untrusted PROXY protocol header",
            proxy_protocol_rejected.clone(),
        );
        let geoip_database_built = Family::<GeoIpLabels, Gauge>::default();
        registry.register(
            "portcullis_geoip_database_build_timestamp_seconds",
            "Build time (Unix seconds) of the GeoIP databases in use; 0 when not configured",
            geoip_database_built.clone(),
        );
        Metrics {
            registry,
            geoip_database_built,
            requests,
            request_duration,
            upstream_errors,
            config_reloads,
            active_connections,
            lockout_bans,
            proxy_protocol_rejected,
        }
    }
}

impl Metrics {
    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors.get_or_create(&UpstreamErrorLabels { kind }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_request_counters_count_into_the_registry() {
        let metrics = Metrics::default();
        let cache = RequestCounters::default();
        for _ in 0..3 {
            cache.increment(&metrics, "deny", 403, Some(2), || "admin".to_string());
        }
        cache.increment(&metrics, "allow", 200, None, String::new);
        let text = metrics.encode();
        assert!(
            text.contains("portcullis_requests_total{decision=\"deny\",status=\"403\",rule=\"admin\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_requests_total{decision=\"allow\",status=\"200\",rule=\"\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn metric_names_and_labels_are_as_specified() {
        let metrics = Metrics::default();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                decision: "deny",
                status: 403,
                rule: "admin".into(),
            })
            .inc();
        metrics.upstream_error("connect");
        metrics
            .config_reloads
            .get_or_create(&ReloadLabels { result: "success" })
            .inc();
        metrics.request_duration.observe(0.002);
        metrics.active_connections.inc();
        metrics.lockout_bans.inc();
        let text = metrics.encode();
        for expected in [
            "portcullis_requests_total{decision=\"deny\",status=\"403\",rule=\"admin\"} 1",
            "portcullis_upstream_errors_total{kind=\"connect\"} 1",
            "portcullis_config_reloads_total{result=\"success\"} 1",
            "portcullis_request_duration_seconds_count 1",
            "portcullis_active_connections 1",
            "portcullis_lockout_bans_total 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
