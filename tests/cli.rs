//! The binary's commands (SPEC §1): `check` on good and broken configs, `hash-key`,
//! exit codes, and `run` serving then stopping on SIGTERM.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Upstream;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(BIN).arg("check").arg("-c").arg(path).output().unwrap()
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_example_config_with_a_summary() {
    let output = check(std::path::Path::new("config/example.toml"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("config/example.toml is valid:"), "{stdout}");
}

#[test]
fn check_accepts_the_demo_config() {
    assert!(check(std::path::Path::new("config/demo.toml")).status.success());
}

#[test]
fn check_reports_each_error_with_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n[[rule]]\nname = \"a\"\nip = [\"10.0.0.0/33\"]\npaths = [\"/x**\"]\naction = \"deny\"\n",
    );
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display().to_string();
    assert!(stderr.contains(&format!("{file}:6:7: rule \"a\".ip:")), "{stderr}");
    assert!(stderr.contains(&format!("{file}:7:10: rule \"a\".paths:")), "{stderr}");
}

#[test]
fn check_warns_about_a_bare_admin_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n[[rule]]\nname = \"admin\"\npaths = [\"/admin\"]\naction = \"deny\"\n",
    );
    let output = check(&path);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{}:4: warning: rule `admin`", path.display())),
        "{stdout}"
    );
}

#[test]
fn check_on_a_missing_file_exits_1() {
    let output = check(std::path::Path::new("/nonexistent/portcullis.toml"));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/portcullis.toml:1:1: cannot read"));
}

#[test]
fn config_path_comes_from_the_environment_when_not_given() {
    let output = Command::new(BIN)
        .arg("check")
        .env("PORTCULLIS_CONFIG", "config/demo.toml")
        .output()
        .unwrap();
    assert!(output.status.success());
}

#[test]
fn hash_key_prints_the_sha256_config_line() {
    // The key and its digest as `printf %s "$key" | sha256sum` printed them
    // (tests/fixtures/identity/api-keys.txt).
    let fixture = std::fs::read_to_string("tests/fixtures/identity/api-keys.txt").unwrap();
    let line = fixture
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (key, digest) = (fields[1], fields[2]);
    for input in [key.to_string(), format!("{key}\n")] {
        let mut child = Command::new(BIN)
            .arg("hash-key")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("sha256 = \"{digest}\"\n")
        );
    }
}

#[test]
fn run_with_an_invalid_config_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[server]\nlisten = \"nope\"\nupstream = \"http://127.0.0.1:3000\"\n",
    );
    let output = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn run_on_a_busy_port_exits_2() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"{}\"\nupstream = \"http://127.0.0.1:3000\"\n",
            busy.local_addr().unwrap()
        ),
    );
    let output = Command::new(BIN).arg("run").arg("-c").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_and_exits_0_on_sigterm() {
    let upstream = Upstream::start().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n",
            upstream.url()
        ),
    );
    let mut child = tokio::process::Command::new(BIN)
        .arg("-c")
        .arg(&path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut served = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            let response =
                common::raw_exchange(address, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
            served = response.status == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the binary served a request");
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/identity");

#[test]
fn check_warns_about_low_bcrypt_cost_and_unscoped_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n[identity.basic]\nhtpasswd_file = \"{FIXTURES}/users-cost5.htpasswd\"\n[identity.jwt]\njwks_file = \"{FIXTURES}/jwks.json\"\nalgorithms = [\"RS256\"]\n"
        ),
    );
    let output = check(&path);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "{FIXTURES}/users-cost5.htpasswd:1: warning: user `dave` has bcrypt cost 5"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("htpasswd -B -C 10"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:6:1: warning: [identity.jwt] has no issuer or audience",
            path.display()
        )),
        "{stdout}"
    );
}

#[test]
fn check_fails_on_an_unreachable_jwks_url_unless_offline() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n[identity.jwt]\njwks_url = \"http://{address}/jwks.json\"\nalgorithms = [\"RS256\"]\nissuer = \"i\"\naudience = [\"a\"]\n"
        ),
    );
    let online = check(&path);
    assert_eq!(online.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&online.stderr);
    assert!(
        stderr.contains(&format!("{}:4:1: identity.jwt.jwks_url: cannot fetch", path.display())),
        "{stderr}"
    );
    let offline = Command::new(BIN)
        .args(["check", "--offline", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(offline.status.success());
    assert!(String::from_utf8_lossy(&offline.stdout).contains("(warning: --offline)"));
}
