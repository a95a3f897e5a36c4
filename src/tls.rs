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

/// The certificates of a PEM CA file, checked to hold at least one.
pub fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
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
    Ok(certs)
}

/// A client configuration trusting `ca` (DER certificates), or the Mozilla roots when none.
pub fn client_config(ca: Option<&[Vec<u8>]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(certs) => {
            for der in certs {
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
        let certs = read_ca_file(path).unwrap();
        assert_eq!(certs.len(), 1);
        assert!(client_config(Some(&certs)).is_ok());
        assert!(client_config(None).is_ok());
        let not_a_ca = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/tls/server.key"
        ));
        assert!(read_ca_file(not_a_ca).is_err());
    }
}
