//! TLS on both sides, with rustls.
//!
//! Toward clients: a PEM certificate chain and key (PKCS#8, RSA or EC) checked to belong
//! together before they are used, served by a resolver that holds them in an `ArcSwap`
//! so a renewed certificate replaces the old one without touching open connections;
//! TLS 1.2 and 1.3 only; ALPN `h2` and `http/1.1`.
//!
//! Toward the upstream: the system's roots or a private CA, hostname verification
//! always on, and ALPN offering `h2` so an upstream that speaks it gets HTTP/2.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// The crypto provider used everywhere (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and private key and checks that the key belongs to
/// the first certificate: a mismatched pair would make every handshake fail.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| format!("the certificate file is not PEM: {error}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no certificate".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|error| format!("the key file holds no usable private key (PKCS#8, RSA or EC PEM): {error}"))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| format!("unsupported private key: {error}"))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|error| format!("the private key does not belong to the certificate: {error}"))?;
    Ok(certified)
}

/// Serves the current certificate; `replace` swaps it for new handshakes while open
/// connections keep theirs.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertResolver {
            current: ArcSwap::new(key),
        })
    }

    /// Serves `key` from the next handshake on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The listener-side TLS configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Trust anchors for the upstream: the PEM CAs of `ca_file`, or the system's roots.
pub fn upstream_roots(ca_pem: Option<&[u8]>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|error| format!("the CA file is not PEM: {error}"))?;
                roots
                    .add(cert)
                    .map_err(|error| format!("unusable CA certificate: {error}"))?;
            }
            if roots.is_empty() {
                return Err("the CA file holds no certificate".to_string());
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!(
                    "no system root certificates could be loaded: {:?}",
                    native.errors
                ));
            }
        }
    }
    Ok(roots)
}

/// The client-side TLS configuration for the upstream (the connector that uses it sets
/// the ALPN protocols it offers).
pub fn upstream_client_config(roots: Arc<RootCertStore>) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn rsa_and_ec_pkcs8_keys_load_with_their_chains() {
        assert!(certified_key(&read("server-rsa-chain.pem"), &read("server-rsa-key.pem")).is_ok());
        assert!(certified_key(&read("server-ec-chain.pem"), &read("server-ec-key.pem")).is_ok());
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let error = certified_key(&read("server-ec-chain.pem"), &read("server-rsa-key.pem")).unwrap_err();
        assert!(error.contains("does not belong"), "{error}");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(
            certified_key(b"nope", &read("server-ec-key.pem"))
                .unwrap_err()
                .contains("no certificate")
        );
        assert!(
            certified_key(&read("server-ec-chain.pem"), b"nope")
                .unwrap_err()
                .contains("no usable private key")
        );
    }

    #[test]
    fn ca_files_become_trust_anchors() {
        assert_eq!(upstream_roots(Some(&read("ca.pem"))).unwrap().len(), 1);
        assert!(upstream_roots(Some(b"")).is_err());
    }
}
