//! Operating the binary (SPEC §1, §8): reload by file edit, SIGHUP and ConfigMap-style
//! symlink swap without a failed request; refused reloads; metrics; graceful shutdown;
//! the access log; `explain`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::binary::{BIN, Running, free_port, request_stream};
use common::{Behaviour, Upstream};

/// A config file in a temporary folder for the binary to serve in front of `upstream`,
/// on ports chosen up front (so a rewritten config keeps them).
struct Deployment {
    upstream: Upstream,
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
    proxy_port: u16,
    admin_port: u16,
}

impl Deployment {
    fn new(upstream: Upstream) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        Deployment {
            upstream,
            dir,
            path,
            proxy_port: free_port(),
            admin_port: free_port(),
        }
    }

    /// The whole config text with these `rules` (and tests): JSON logs, a 5 s grace.
    fn config(&self, rules: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\nupstream = \"{}\"\nshutdown_grace = \"5s\"\n[log]\nformat = \"json\"\n{rules}",
            self.proxy_port,
            self.admin_port,
            self.upstream.url()
        )
    }

    /// Writes the config file, as an operator's edit would.
    fn write(&self, rules: &str) {
        std::fs::write(&self.path, self.config(rules)).unwrap();
    }

    async fn start(&self) -> Running {
        Running::start(self.dir.path(), &self.path).await
    }
}

const REQUEST_X: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
const OPEN: &str = "[[rule]]\nname = \"open\"\naction = \"allow\"\n";
const CLOSED: &str =
    "[[rule]]\nname = \"closed\"\npaths = [\"/x\"]\naction = \"deny\"\n[[rule]]\nname = \"open\"\naction = \"allow\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_config_file_reloads_without_a_failed_request() {
    let deployment = Deployment::new(Upstream::start().await);
    deployment.write(OPEN);
    let running = deployment.start().await;
    assert_eq!(running.get("/x").await, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let (task, failures, total) = request_stream(running.proxy, REQUEST_X, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    deployment.write(CLOSED);
    running
        .wait_for("the edit to apply", async || running.get("/x").await == 403)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {} requests",
        total.load(Ordering::SeqCst)
    );
    assert!(total.load(Ordering::SeqCst) > 50);
    assert!(
        running
            .metrics()
            .await
            .contains("portcullis_config_reloads_total{result=\"success\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_without_a_failed_request() {
    let deployment = Deployment::new(Upstream::start().await);
    deployment.write(OPEN);
    let running = deployment.start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (task, failures, total) = request_stream(running.proxy, REQUEST_X, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SIGHUP right after the edit, before the file watcher's debounce ends.
    deployment.write(CLOSED);
    running.signal("-HUP");
    running
        .wait_for("the SIGHUP reload", async || running.get("/x").await == 403)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {} requests",
        total.load(Ordering::SeqCst)
    );
    let logs = running.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"config reloaded\"") && l.contains("\"trigger\":\"SIGHUP\"")),
        "{logs}"
    );
    assert!(
        running
            .metrics()
            .await
            .contains("portcullis_config_reloads_total{result=\"success\"} 1"),
        "the watcher saw nothing new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_counted_and_the_old_one_serves() {
    let deployment = Deployment::new(Upstream::start().await);
    deployment.write(CLOSED);
    let running = deployment.start().await;
    deployment.write("[[rule]]\nname = \"typo\"\nacton = \"allow\"\n");
    running
        .wait_for("the failed reload", async || {
            running.metrics().await.contains("result=\"failure\"} 1")
        })
        .await;
    assert_eq!(running.get("/x").await, 403, "the old config still decides");
    let logs = running.logs();
    assert!(
        logs.contains(&format!(
            "{}:10:1: rule.acton: unknown field",
            deployment.path.display()
        )),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_policy_test_blocks_the_reload() {
    let deployment = Deployment::new(Upstream::start().await);
    let guarded = "[[test]]\nname = \"x stays closed\"\nrequest = \"GET /x\"\nexpect = 403\n";
    deployment.write(&format!("{CLOSED}{guarded}"));
    let running = deployment.start().await;
    deployment.write(&format!("{OPEN}{guarded}"));
    running
        .wait_for("the refused reload", async || {
            running.metrics().await.contains("result=\"failure\"} 1")
        })
        .await;
    assert_eq!(running.get("/x").await, 403);
    assert!(
        running
            .logs()
            .contains("test \\\"x stays closed\\\": expected 403, got 200"),
        "{}",
        running.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_reloads() {
    let deployment = Deployment::new(Upstream::start().await);
    // The layout kubelet makes: portcullis.toml -> ..data/portcullis.toml, ..data -> ..v1
    let mount = deployment.dir.path().join("config");
    std::fs::create_dir_all(mount.join("..v1")).unwrap();
    std::fs::write(mount.join("..v1/portcullis.toml"), deployment.config(OPEN)).unwrap();
    std::os::unix::fs::symlink("..v1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/portcullis.toml", mount.join("portcullis.toml")).unwrap();
    let running = Running::start(deployment.dir.path(), &mount.join("portcullis.toml")).await;
    assert_eq!(running.get("/x").await, 200);

    std::fs::create_dir_all(mount.join("..v2")).unwrap();
    std::fs::write(mount.join("..v2/portcullis.toml"), deployment.config(CLOSED)).unwrap();
    std::os::unix::fs::symlink("..v2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..v1")).unwrap();
    running
        .wait_for("the swap to apply", async || running.get("/x").await == 403)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_ip_file_reloads() {
    let deployment = Deployment::new(Upstream::start().await);
    let blocklist = deployment.dir.path().join("block.txt");
    std::fs::write(&blocklist, "192.0.2.0/24\n").unwrap();
    deployment.write(&format!(
        "[[rule]]\nname = \"blocklist\"\nip_file = \"block.txt\"\naction = \"deny\"\n{OPEN}"
    ));
    let running = deployment.start().await;
    assert_eq!(running.get("/x").await, 200);
    std::fs::write(&blocklist, "192.0.2.0/24\n127.0.0.1\n").unwrap();
    running
        .wait_for("the blocklist edit", async || running.get("/x").await == 403)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_changes_are_reported_as_needing_a_restart() {
    let deployment = Deployment::new(Upstream::start().await);
    deployment.write(OPEN);
    let running = deployment.start().await;
    let proxy_port = deployment.proxy_port;
    let moved = deployment.config(CLOSED).replace(
        &format!("listen = \"127.0.0.1:{proxy_port}\""),
        &format!("listen = [\"127.0.0.1:{proxy_port}\", \"127.0.0.1:{}\"]", free_port()),
    );
    std::fs::write(&deployment.path, moved).unwrap();
    running
        .wait_for("the reload", async || running.get("/x").await == 403)
        .await;
    assert!(
        running.logs().contains("changed setting needs a restart"),
        "{}",
        running.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_exits_0() {
    let deployment = Deployment::new(Upstream::start_with(Behaviour::Delay(Duration::from_millis(1500))).await);
    deployment.write(OPEN);
    let mut running = deployment.start().await;
    let proxy = running.proxy;
    let slow = tokio::spawn(async move {
        common::raw_exchange(proxy, b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .status
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.signal("-TERM");
    running
        .wait_for("readyz to turn 503", async || {
            running.admin_get("/readyz").await.map(|r| r.0) == Some(503)
        })
        .await;
    // /readyz turns first, then the listeners close: wait for the refusal, well within
    // the slow request's 1.5 s, which must still complete.
    running
        .wait_for("new connections to be refused", async || {
            tokio::net::TcpStream::connect(running.proxy).await.is_err()
        })
        .await;
    assert!(
        !slow.is_finished(),
        "the slow request was still in flight during the refusal"
    );
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request completed");
    let status = tokio::time::timeout(Duration::from_secs(10), running.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(running.logs().contains("shutdown complete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_the_rest_is_cut_and_counted() {
    let deployment = Deployment::new(Upstream::start_with(Behaviour::Delay(Duration::from_secs(30))).await);
    let text = deployment
        .config(OPEN)
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"500ms\"");
    std::fs::write(&deployment.path, text).unwrap();
    let mut running = deployment.start().await;
    let proxy = running.proxy;
    tokio::spawn(async move {
        let _ = tokio::net::TcpStream::connect(proxy)
            .await
            .map(|mut stream| async move {
                use tokio::io::AsyncWriteExt;
                let _ = stream.write_all(b"GET /stuck HTTP/1.1\r\nHost: a\r\n\r\n").await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
    });
    let mut stuck = tokio::net::TcpStream::connect(proxy).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stuck, b"GET /stuck HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.signal("-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), running.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let logs = running.logs();
    assert!(
        logs.contains("shutdown grace ran out") && logs.contains("\"cut\":1"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_access_log_ties_a_response_to_its_request_id() {
    let deployment = Deployment::new(Upstream::start().await);
    deployment.write(CLOSED);
    let running = deployment.start().await;
    let response = common::raw_exchange(
        running.proxy,
        b"GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: trace-77\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.header("x-request-id").as_deref(), Some("trace-77"));
    running
        .wait_for("the access log line", async || running.logs().contains("trace-77"))
        .await;
    let line = running
        .logs()
        .lines()
        .find(|l| l.contains("trace-77"))
        .unwrap()
        .to_string();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    for (field, expected) in [
        ("request_id", serde_json::json!("trace-77")),
        ("client_ip", serde_json::json!("127.0.0.1")),
        ("peer", serde_json::json!("127.0.0.1")),
        ("method", serde_json::json!("GET")),
        ("path", serde_json::json!("/x")),
        ("status", serde_json::json!(403)),
        ("decision", serde_json::json!("deny")),
        ("rule", serde_json::json!("closed")),
        ("user", serde_json::json!("")),
    ] {
        assert_eq!(event[field], expected, "{field} in {line}");
    }
    assert!(event["duration_ms"].is_number());
    assert_eq!(event["target"], "access");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    let deployment = Deployment::new(Upstream::start().await);
    deployment.write(CLOSED);
    let running = deployment.start().await;
    for _ in 0..3 {
        running.get("/x").await;
    }
    running.get("/y").await;
    let metrics = running.metrics().await;
    for expected in [
        "portcullis_requests_total{decision=\"deny\",status=\"403\",rule=\"closed\"} 3",
        "portcullis_requests_total{decision=\"allow\",status=\"200\",rule=\"open\"} 1",
        "portcullis_request_duration_seconds_count 4",
        "portcullis_active_connections",
        "portcullis_lockout_bans_total 0",
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    assert_eq!(running.admin_get("/healthz").await.unwrap().0, 200);
}

fn explain(args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(BIN)
        .args(["explain", "-c", "config/example.toml"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).to_string(),
    )
}

#[test]
fn explain_shows_an_allowed_request_rule_by_rule() {
    let (code, text) = explain(&["/assets/app.css"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("path       /assets/app.css   (match key /assets/app.css)"),
        "{text}"
    );
    assert!(text.contains("client ip  192.0.2.1   (peer; peer 192.0.2.1)"), "{text}");
    assert!(
        text.contains("1  blocklist               no match       client IP not in its ip/ip_file"),
        "{text}"
    );
    assert!(
        text.contains("8  public-read             matched        decides"),
        "{text}"
    );
    assert!(text.contains("9  api-writes              not reached"), "{text}");
    assert!(
        text.contains("decision   allow (forwarded): allowed by rule \"public-read\""),
        "{text}"
    );
}

#[test]
fn explain_shows_a_denial_and_a_hidden_denial() {
    let (_, denied) = explain(&["--method", "DELETE", "/assets/app.css"]);
    assert!(
        denied.contains("decision   deny (answered 403): denied by the default policy"),
        "{denied}"
    );
    let (_, hidden) = explain(&["--ip", "192.0.2.77", "https://admin.example.com/admin/users"]);
    assert!(
        hidden.contains("6  admin-closed            matched        decides"),
        "{hidden}"
    );
    assert!(
        hidden.contains("decision   deny (answered 404): denied, hidden as 404 by rule \"admin-closed\""),
        "{hidden}"
    );
}

#[test]
fn explain_verifies_credentials_from_headers_and_shows_401() {
    let (_, anonymous) = explain(&["--ip", "10.20.1.5", "https://admin.example.com/admin/users"]);
    assert!(
        anonymous.contains("identity   anonymous (no credential presented)"),
        "{anonymous}"
    );
    assert!(
        anonymous.contains("(answered 401): no valid identity; challenge with 401 by rule \"admin\""),
        "{anonymous}"
    );
    let wrong = "Authorization: Basic YWxpY2U6d3Jvbmc=";
    let (_, refused) = explain(&[
        "--ip",
        "10.20.1.5",
        "-H",
        wrong,
        "https://admin.example.com/admin/users",
    ]);
    assert!(
        refused.contains("identity   refused basic credential: wrong user or password"),
        "{refused}"
    );
}

#[test]
fn explain_follows_x_forwarded_for_from_trusted_peers() {
    let (_, text) = explain(&[
        "--peer",
        "10.0.0.9",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "/assets/app.css",
    ]);
    assert!(
        text.contains("client ip  203.0.113.9   (x-forwarded-for; peer 10.0.0.9)"),
        "{text}"
    );
    assert!(text.contains("denied by rule \"blocklist\""), "{text}");
}

#[test]
fn explain_json_is_machine_readable() {
    let (code, text) = explain(&["--json", "--method", "POST", "/api/orders"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["decision"]["status"], 401);
    assert_eq!(json["decision"]["rule"], "api-writes");
    assert_eq!(json["decision"]["forwarded"], false);
    assert_eq!(json["identity"]["state"], "anonymous");
    assert_eq!(json["rules"][8]["result"], "matched");
    assert_eq!(
        json["location"]["country"], "FR",
        "192.0.2.1 has only a registered country"
    );
    assert_eq!(json["match_key"], "/api/orders");
}

#[test]
fn explain_shows_audit_skips() {
    let (_, text) = explain(&["/api/v1/items"]);
    assert!(text.contains("old-api-trial-block     audit: skipped"), "{text}");
    assert!(
        text.contains("audit rules that would have denied: old-api-trial-block"),
        "{text}"
    );
}
