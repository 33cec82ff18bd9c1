//! The demo's config and the curl lines it prints: every line must show the status its
//! comment promises, against the built-in echo upstream.

mod common;

use common::Proxy;
use portcullis::demo;
use tokio::net::TcpListener;
use tokio::process::Command;

#[tokio::test]
async fn every_printed_curl_line_shows_its_promised_status() {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_address = echo.local_addr().unwrap();
    tokio::spawn(demo::echo_upstream(echo));
    let demo_toml = std::fs::read_to_string("config/demo.toml")
        .unwrap()
        .replace(
            "htpasswd_file = \"demo.htpasswd\"",
            &format!(
                "htpasswd_file = \"{}/config/demo.htpasswd\"",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:3000", &echo_address.to_string())
        .replace("admin_listen = \"127.0.0.1:9901\"\n", "");
    let proxy = Proxy::start(&demo_toml).await;
    let lines = demo::curl_lines(&proxy.address.to_string(), &echo_address.to_string());
    let mut checked = 0;
    let mut promised = None;
    for line in lines.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            promised = comment.split(':').next().and_then(|code| code.parse::<u16>().ok());
            continue;
        }
        let (Some(status), true) = (promised.take(), line.starts_with("curl -i")) else {
            continue;
        };
        let args = shell_words(line);
        let output = Command::new("curl")
            .args(&args[1..])
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .output()
            .await
            .expect("curl is installed");
        assert_eq!(String::from_utf8_lossy(&output.stdout), status.to_string(), "{line}");
        checked += 1;
    }
    assert_eq!(checked, 11, "every curl line was run");
}

/// Splits a curl line the way a shell would for the quoting the demo uses.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}
