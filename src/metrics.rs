//! Prometheus metrics: one registry per server (tests run many servers in one process), exposed
//! as OpenMetrics text on `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// What a request asked for, as a bounded label (never the raw path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `@v/list`
    List,
    /// `@latest`
    Latest,
    /// `.info`
    Info,
    /// `.mod`
    Mod,
    /// `.zip`
    Zip,
    /// `/sumdb/...`
    Sumdb,
    /// Our own endpoints and anything unrecognised.
    Other,
}

impl Route {
    /// Classifies a request path by its shape alone (validation happens in the handlers).
    pub fn of(path: &str) -> Route {
        if path.starts_with("/sumdb/") {
            Route::Sumdb
        } else if path.ends_with("/@v/list") {
            Route::List
        } else if path.ends_with("/@latest") {
            Route::Latest
        } else if !path.contains("/@v/") {
            Route::Other
        } else if path.ends_with(".info") {
            Route::Info
        } else if path.ends_with(".mod") {
            Route::Mod
        } else if path.ends_with(".zip") {
            Route::Zip
        } else {
            Route::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::List => "list",
            Route::Latest => "latest",
            Route::Info => "info",
            Route::Mod => "mod",
            Route::Zip => "zip",
            Route::Sumdb => "sumdb",
            Route::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The counters modstash keeps; cheap to clone (shared handles).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    response_bytes: Family<RouteLabel, Counter>,
    stash_checks: Family<ResultLabel, Counter>,
    flight_waiters: Counter,
    upstream_fetches: Family<ResultLabel, Counter>,
    upstream_bytes: Counter,
    lease_acquisitions: Counter,
    lease_takeovers: Counter,
    lease_lost: Counter,
    storage_errors: Counter,
    sumdb: Family<ResultLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (at zero).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("modstash");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        let response_bytes = Family::<RouteLabel, Counter>::default();
        registry.register(
            "http_response_bytes",
            "Body bytes of answers begun (their declared length), by route",
            response_bytes.clone(),
        );
        let stash_checks = Family::<ResultLabel, Counter>::default();
        registry.register(
            "stash_checks",
            "Version look-ups: stored (a storage hit) or fetch (joined an upstream fetch)",
            stash_checks.clone(),
        );
        let flight_waiters = Counter::default();
        registry.register(
            "flight_waiters",
            "Requests that waited for a fetch another request leads",
            flight_waiters.clone(),
        );
        let upstream_fetches = Family::<ResultLabel, Counter>::default();
        registry.register(
            "upstream_fetches",
            "Fetches of a module version from upstream (info, mod and zip), by result",
            upstream_fetches.clone(),
        );
        let upstream_bytes = Counter::default();
        registry.register(
            "upstream_bytes",
            "Bytes of module versions fetched from upstream",
            upstream_bytes.clone(),
        );
        let lease_acquisitions = Counter::default();
        registry.register(
            "lease_acquisitions",
            "Fetch leases acquired",
            lease_acquisitions.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "lease_takeovers",
            "Fetch leases acquired after another holder stopped without committing",
            lease_takeovers.clone(),
        );
        let lease_lost = Counter::default();
        registry.register(
            "lease_lost",
            "Fetch leases lost while fetching",
            lease_lost.clone(),
        );
        let storage_errors = Counter::default();
        registry.register(
            "storage_errors",
            "Requests that failed because storage did",
            storage_errors.clone(),
        );
        let sumdb = Family::<ResultLabel, Counter>::default();
        registry.register(
            "sumdb_answers",
            "Checksum-database answers: cached (memory or storage) or upstream",
            sumdb.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            response_bytes,
            stash_checks,
            flight_waiters,
            upstream_fetches,
            upstream_bytes,
            lease_acquisitions,
            lease_takeovers,
            lease_lost,
            storage_errors,
            sumdb,
        }
    }

    /// One answered request and the length of its body.
    pub fn request(&self, route: Route, status: u16, bytes: u64) {
        let route = route.label();
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        if bytes > 0 {
            self.response_bytes
                .get_or_create(&RouteLabel { route })
                .inc_by(bytes);
        }
    }

    /// A version check found it committed in storage.
    pub fn stash_stored(&self) {
        self.result(&self.stash_checks, "stored");
    }

    /// A version check joined a fetch; `waiting` when another request leads it.
    pub fn stash_fetch(&self, waiting: bool) {
        self.result(&self.stash_checks, "fetch");
        if waiting {
            self.flight_waiters.inc();
        }
    }

    /// An upstream fetch of a version ended: `bytes` fetched when it succeeded.
    pub fn upstream_fetch(&self, ok: Option<u64>) {
        match ok {
            Some(bytes) => {
                self.result(&self.upstream_fetches, "ok");
                self.upstream_bytes.inc_by(bytes);
            }
            None => self.result(&self.upstream_fetches, "error"),
        }
    }

    /// A fetch lease was acquired; `takeover` when another holder had it before us.
    pub fn lease_acquired(&self, takeover: bool) {
        self.lease_acquisitions.inc();
        if takeover {
            self.lease_takeovers.inc();
        }
    }

    /// A fetch lease was lost mid-fetch.
    pub fn lease_lost(&self) {
        self.lease_lost.inc();
    }

    /// A request failed because storage did.
    pub fn storage_error(&self) {
        self.storage_errors.inc();
    }

    /// A checksum-database answer, from our cache or from upstream.
    pub fn sumdb_answer(&self, cached: bool) {
        self.result(&self.sumdb, if cached { "cached" } else { "upstream" });
    }

    fn result(&self, family: &Family<ResultLabel, Counter>, result: &'static str) {
        family.get_or_create(&ResultLabel { result }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_shape() {
        for (path, route) in [
            ("/example.com/m/@v/list", Route::List),
            ("/example.com/m/@latest", Route::Latest),
            ("/example.com/m/@v/v1.0.0.info", Route::Info),
            ("/example.com/m/@v/v1.0.0.mod", Route::Mod),
            ("/example.com/m/@v/v1.0.0.zip", Route::Zip),
            ("/sumdb/sum.golang.org/supported", Route::Sumdb),
            ("/healthz", Route::Other),
            ("/x.zip", Route::Other),
        ] {
            assert_eq!(Route::of(path), route, "{path}");
        }
    }

    #[test]
    fn counters_show_in_the_exposition() {
        let m = Metrics::new();
        m.request(Route::Info, 200, 42);
        m.upstream_fetch(Some(100));
        let text = m.encode();
        assert!(
            text.contains("modstash_http_requests_total{route=\"info\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("modstash_http_response_bytes_total{route=\"info\"} 42"));
        assert!(text.contains("modstash_upstream_bytes_total 100"));
        assert!(text.ends_with("# EOF\n"));
    }
}
