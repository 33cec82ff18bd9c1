//! What the container image and the Kubernetes example rely on, tested without a
//! Docker engine: the binary run as the image's non-root user, configured only through
//! `PORTCULLIS_CONFIG` pointing into a read-only, ConfigMap-shaped mount; and the
//! sidecar example's config, which must be valid and pass its own tests.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Upstream;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// The image's user (Dockerfile `USER 10001:10001`).
const IMAGE_UID: &str = "10001";

fn embedded_sidecar_config() -> String {
    let yaml = std::fs::read_to_string("config/kubernetes-sidecar.yaml").unwrap();
    let start = yaml
        .find("portcullis.toml: |\n")
        .expect("the ConfigMap holds portcullis.toml")
        + "portcullis.toml: |\n".len();
    yaml[start..]
        .lines()
        .take_while(|line| line.starts_with("    ") || line.is_empty())
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_sidecar_example_config_is_valid_and_its_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, embedded_sidecar_config()).unwrap();
    let output = std::process::Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("2 tests passed"), "{stdout}");
}

#[test]
fn the_dockerfile_runs_as_non_root_with_the_documented_config_path() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    assert!(dockerfile.contains(&format!("USER {IMAGE_UID}:{IMAGE_UID}")));
    assert!(dockerfile.contains("PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml"));
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.contains("/etc/portcullis/portcullis.toml"),
        "the README documents the mount path"
    );
}

fn make_readable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_as_the_image_user_from_a_read_only_configmap_mount() {
    let upstream = Upstream::start().await;
    let root = tempfile::tempdir().unwrap();
    make_readable(root.path());
    let mount = root.path().join("etc-portcullis");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n",
        upstream.url()
    );
    // kubelet's layout, owned by root and read-only for everyone else.
    std::fs::create_dir_all(mount.join("..v1")).unwrap();
    std::fs::write(mount.join("..v1/portcullis.toml"), config).unwrap();
    std::os::unix::fs::symlink("..v1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/portcullis.toml", mount.join("portcullis.toml")).unwrap();
    for dir in [&mount, &mount.join("..v1")] {
        make_readable(dir);
    }
    std::fs::set_permissions(
        mount.join("..v1/portcullis.toml"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();

    let mut child = tokio::process::Command::new("setpriv")
        .args(["--reuid", IMAGE_UID, "--regid", IMAGE_UID, "--clear-groups", BIN, "run"])
        .env("PORTCULLIS_CONFIG", mount.join("portcullis.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("setpriv (util-linux) runs the binary as the image's user");
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            use tokio::io::AsyncReadExt;
            child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
            panic!("the binary exited with {status}: {stderr}");
        }
        assert!(Instant::now() < deadline, "the binary did not start as uid {IMAGE_UID}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = common::raw_exchange(address, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(response.status, 200);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
