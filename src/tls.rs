//! TLS to PostgreSQL and Redis: rustls with ring, no OpenSSL.
//!
//! authd always verifies the server's certificate and host name: against the Mozilla roots
//! (managed databases in the cloud use public CAs), or against a CA file the operator
//! names (a private CA). It never makes an unverified TLS connection.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::jwt::pem;

/// A PEM CA file, read once: its text (what the redis crate takes) and its certificates
/// (what rustls takes), checked to hold at least one.
#[derive(Clone)]
pub struct CaFile {
    pem: Vec<u8>,
    certs: Vec<Vec<u8>>,
}

/// Only the count: the file could bundle more than certificates (a key, say).
impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaFile({} certificates)", self.certs.len())
    }
}

impl CaFile {
    pub fn read(path: &Path) -> Result<CaFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs: Vec<Vec<u8>> = pem::decode_all(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .into_iter()
            .filter(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| der)
            .collect();
        if certs.is_empty() {
            return Err(format!("{} holds no CERTIFICATE", path.display()));
        }
        Ok(CaFile {
            pem: text.into_bytes(),
            certs,
        })
    }

    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The DER certificates.
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.certs
    }
}

/// A client configuration trusting `ca`, or the Mozilla roots when none.
pub fn client_config(ca: Option<&CaFile>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for der in ca.certs() {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|e| format!("unusable CA certificate: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_test_ca_and_builds_a_config() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tls/ca.pem"));
        let ca = CaFile::read(path).unwrap();
        assert_eq!(ca.certs().len(), 1);
        assert!(ca.pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(client_config(Some(&ca)).is_ok());
        assert!(client_config(None).is_ok());
        let not_a_ca = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/tls/server.key"
        ));
        assert!(CaFile::read(not_a_ca).is_err());
    }
}
