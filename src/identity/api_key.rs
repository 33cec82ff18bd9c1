//! API keys: the config holds only each key's SHA-256, and a presented key is compared
//! against every configured digest in constant time, so neither the keys nor timing
//! reveal anything.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Identity, Scheme};

/// One `[[identity.api_keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The identity's user name.
    pub name: String,
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    /// Its roles.
    pub roles: Vec<String>,
}

impl ApiKey {
    /// Parses the hex digest written in the config (`portcullis hash-key` prints it).
    pub fn parse_digest(hex_digest: &str) -> Result<[u8; 32], String> {
        let bytes = hex::decode(hex_digest.trim()).map_err(|_| {
            "`sha256` must be 64 hex characters; make it with `printf %s \"$KEY\" | portcullis hash-key`".to_string()
        })?;
        bytes.try_into().map_err(|_| {
            "`sha256` must be 64 hex characters (a SHA-256 digest); make it with `portcullis hash-key`".to_string()
        })
    }
}

/// Every configured key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    /// The configured keys.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        ApiKeys { keys }
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identity of a presented key. Every digest is compared, with no early exit,
    /// so the time taken does not depend on which entry (if any) matched.
    pub fn verify(&self, presented: &str) -> Option<Identity> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&ApiKey> = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found.map(|key| Identity {
            user: key.name.clone(),
            roles: key.roles.clone(),
            scheme: Scheme::ApiKey,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        // The fixture's key and the digest `printf %s "$key" | sha256sum` printed.
        let fixture = include_str!("../../tests/fixtures/identity/api-keys.txt");
        ApiKeys::new(
            fixture
                .lines()
                .map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    ApiKey {
                        name: fields[0].to_string(),
                        digest: ApiKey::parse_digest(fields[2]).unwrap(),
                        roles: vec!["deployer".to_string()],
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn a_configured_key_yields_its_identity() {
        let identity = keys().verify("pc_live_213ee1bdb6ad9b698f27d44aafb4d3ee").unwrap();
        assert_eq!(identity.user, "ci-deployer");
        assert_eq!(identity.roles, ["deployer"]);
        assert_eq!(identity.scheme, Scheme::ApiKey);
    }

    #[test]
    fn unknown_and_near_miss_keys_are_refused() {
        let keys = keys();
        assert!(keys.verify("pc_live_213ee1bdb6ad9b698f27d44aafb4d3eX").is_none());
        assert!(keys.verify("").is_none());
        assert!(
            keys.verify("59c4923eec793b8ac7e789cdf38dbba1a6464ab45daeaca352d606bf435a138c")
                .is_none()
        );
    }

    #[test]
    fn digests_must_be_64_hex_characters() {
        assert!(ApiKey::parse_digest("abc").unwrap_err().contains("hash-key"));
        assert!(ApiKey::parse_digest(&"z".repeat(64)).is_err());
        assert!(ApiKey::parse_digest(&"ab".repeat(32)).is_ok());
    }
}
