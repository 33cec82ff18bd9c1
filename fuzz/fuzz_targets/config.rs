//! Fuzzes config loading: arbitrary bytes (lossily decoded as UTF-8) as the
//! TOML text of `fuzz.toml`.
//!
//! `portcullis::config::load_text` must never panic; errors are the expected
//! result for almost every input. When a config does load, its `[[test]]`
//! cases (`policy_tests::failures`) and the lint (`lint::warnings`) are run on
//! it, and they must not panic either.
//!
//! File references (`ip_file`, `htpasswd_file`, `jwks_file`, `[responses]`)
//! are resolved against the working directory and normally fail to load. So
//! that a run cannot block or exhaust memory on a special file the fuzzer
//! happens to name (`/dev/zero`, `/proc/self/pagemap`, a FIFO), inputs
//! holding a string that names such a path are skipped (see `names_unsafe_file`).

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if names_unsafe_file(&text) {
        return;
    }
    let config = match portcullis::config::load_text(Path::new("fuzz.toml"), text) {
        Ok(config) => config,
        Err(errors) => {
            if verbose() {
                eprintln!("config refused:\n{errors}");
            }
            return;
        }
    };
    let failures = portcullis::policy_tests::failures(&config);
    let warnings = portcullis::lint::warnings(&config);
    if verbose() {
        eprintln!(
            "config loaded: {} rules, {} tests ({} failing), {} lint warnings",
            config.policy.rules.rules().len(),
            config.tests.len(),
            failures.len(),
            warnings.len()
        );
    }
});

/// `PORTCULLIS_FUZZ_VERBOSE=1` prints what each input did (for checking seeds,
/// e.g. `target/x86_64-unknown-linux-gnu/release/config corpus/config/*`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PORTCULLIS_FUZZ_VERBOSE").is_some())
}

/// Files larger than this are never read during fuzzing.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// True if a string value in the TOML names an existing path under `/proc`,
/// `/sys` or `/dev`, a special file, or a file over `MAX_FILE_BYTES` (what
/// reading it could hang on or blow up with). Text that is not TOML is not read by the loader at all.
fn names_unsafe_file(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    let mut unsafe_file = false;
    for value in table.values() {
        visit_strings(value, &mut |string| {
            if string.is_empty() || string.contains('\0') {
                return;
            }
            let path = Path::new(string);
            let Ok(metadata) = std::fs::metadata(path) else {
                return; // does not exist: the loader reports it
            };
            let pseudo = std::fs::canonicalize(path)
                .is_ok_and(|real| ["/proc", "/sys", "/dev"].iter().any(|root| real.starts_with(root)));
            let special = !metadata.is_file() && !metadata.is_dir();
            if pseudo || special || metadata.len() > MAX_FILE_BYTES {
                unsafe_file = true;
            }
        });
    }
    unsafe_file
}

fn visit_strings(value: &toml::Value, visit: &mut impl FnMut(&str)) {
    match value {
        toml::Value::String(string) => visit(string),
        toml::Value::Array(array) => array.iter().for_each(|item| visit_strings(item, visit)),
        toml::Value::Table(table) => table.values().for_each(|item| visit_strings(item, visit)),
        _ => {}
    }
}
