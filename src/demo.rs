//! `portcullis demo`: a built-in echo upstream and the proxy in front of it, on
//! loopback, with curl lines that show each kind of decision.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::{self, Config};
use crate::{logging, server};

/// Runs the demo until Ctrl-C, from the repository root (where `config/demo.toml` and
/// the htpasswd file it names live).
pub fn main() -> ExitCode {
    let path = PathBuf::from("config/demo.toml");
    if !path.exists() {
        eprintln!("portcullis demo: config/demo.toml not found; run the demo from the repository root");
        return ExitCode::from(1);
    }
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    logging::init(config.log.format);
    let runtime = match server::runtime(config.server.workers) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portcullis: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portcullis demo: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let upstream_address = config.server.upstream.authority.as_str().to_string();
    let upstream = TcpListener::bind(&upstream_address)
        .await
        .map_err(|error| format!("cannot start the echo upstream on {upstream_address}: {error}"))?;
    tokio::spawn(echo_upstream(upstream));
    let grace = config.server.shutdown_grace;
    let server = server::Server::start(config).await.map_err(|error| error.to_string())?;
    let proxy = server.addresses()[0];
    println!("{}", curl_lines(&proxy.to_string(), &upstream_address));
    tokio::signal::ctrl_c().await.map_err(|error| error.to_string())?;
    server.shutdown(grace).await;
    Ok(())
}

/// The lines `demo` prints, each with the status it shows.
pub fn curl_lines(proxy: &str, upstream: &str) -> String {
    format!(
        "portcullis demo: proxy on http://{proxy}, echo upstream on http://{upstream} (Ctrl-C to stop)\n\
         \n\
         # 200: allowed by rule \"public\", forwarded; the echo shows what the upstream received\n\
         curl -i http://{proxy}/hello\n\
         # 403: rule \"admin-from-office\" only lets 10.0.0.0/8 in, then \"admin-closed\" denies\n\
         curl -i http://{proxy}/admin/users\n\
         # 403: the same when the path is disguised: it is normalized to /admin/users first\n\
         curl -i --path-as-is 'http://{proxy}/public/../%61dmin/./users'\n\
         # 400: a path no backend reads the same way (Tomcat's `..;`) is refused outright\n\
         curl -i --path-as-is 'http://{proxy}/public/..;/admin/users'\n\
         # 404: rule \"internal\" hides that /internal exists\n\
         curl -i http://{proxy}/internal/metrics\n\
         # 403: 203.0.113.7 is on the blocklist (127.0.0.1 is a trusted proxy in the demo, so X-Forwarded-For counts)\n\
         curl -i -H 'X-Forwarded-For: 203.0.113.7' http://{proxy}/hello\n\
         # 403: no rule allows POST, so the default (deny) applies\n\
         curl -i -X POST http://{proxy}/hello\n\
         # 401: rule \"api\" needs an identity; the answer says which schemes to use\n\
         curl -i http://{proxy}/api/status\n\
         # 200: the demo API key; the upstream learns x-portcullis-user: demo-ci (and never sees the key)\n\
         curl -i -H 'X-Api-Key: demo-key' http://{proxy}/api/status\n\
         # 403: rule \"reports\" needs the admin role, which demo-ci does not have\n\
         curl -i -H 'X-Api-Key: demo-key' http://{proxy}/reports/q3\n\
         # 200: alice (HTTP Basic, bcrypt cost 10 from config/demo.htpasswd) is an admin\n\
         curl -i -u alice:wonderland http://{proxy}/reports/q3\n\
         # metrics\n\
         curl -s http://127.0.0.1:9901/metrics | grep portcullis_requests_total\n"
    )
}

/// An upstream that answers every request with what it received, as JSON.
pub async fn echo_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(|request: Request<Incoming>| async move { Ok::<_, Infallible>(echo(request).await) });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into()))
        .collect();
    let echo = serde_json::json!({
        "upstream": "portcullis demo echo",
        "method": parts.method.as_str(),
        "target": parts.uri.to_string(),
        "headers": headers,
        "body_bytes": body.len(),
    });
    let mut response = Response::new(Full::new(Bytes::from(format!("{echo:#}\n"))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
