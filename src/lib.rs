//! portcullis: an HTTP reverse proxy that decides every request from access rules in
//! one TOML file, forwards what is allowed and answers the rest with 401, 403 or a
//! hiding 404.
//!
//! The modules follow a request: `server` accepts it, `request` turns it into the
//! facts the rules see (with `path` normalizing the path and `geoip` placing the
//! client), `rules` decides, `proxy`
//! forwards or `respond` answers. `config` builds the compiled policy; `admin` and
//! `metrics` expose health and counters; `cli` is what the binary runs.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod explain;
pub mod geoip;
pub mod identity;
pub mod lint;
pub mod logging;
pub mod metrics;
pub mod path;
pub mod policy_tests;
pub mod proxy;
pub mod request;
pub mod respond;
pub mod rules;
pub mod server;
pub mod state;
pub mod tls;
