//! TLS for the gRPC listener: the server's certificate chain and private key (PEM), checked
//! when they are loaded so that a bad file stops the server before it serves, and handed to
//! tonic's rustls acceptor (the `ring` provider). Without an identity the server speaks
//! plaintext HTTP/2, as the clients' `tls=false` expects.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tonic::transport::{Identity, Server, ServerTlsConfig};

/// How long a client may take over its TLS handshake. The connection holds a place under the
/// connection limit meanwhile, so a silent client must not keep it for long.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read.
    #[error("cannot read the TLS certificate {path}: {source}")]
    CertificateUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file could not be read.
    #[error("cannot read the TLS key {path}: {source}")]
    KeyUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("the TLS certificate {0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate(String),
    /// The key file holds no PEM private key.
    #[error("the TLS key {0} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")]
    NoPrivateKey(String),
    /// rustls refused the pair: an unparsable certificate or key, an unsupported key type, or
    /// a key that is not the certificate's.
    #[error("the TLS certificate and key were refused: {0}")]
    Refused(String),
}

/// The server's certificate chain and private key, checked by rustls.
#[derive(Clone)]
pub struct TlsIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads and checks a PEM certificate chain (leaf first) and its PEM private key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let cert_pem = std::fs::read(cert)
            .map_err(|source| TlsError::CertificateUnreadable { path: cert.into(), source })?;
        let key_pem = std::fs::read(key)
            .map_err(|source| TlsError::KeyUnreadable { path: key.into(), source })?;
        Self::checked(cert_pem, key_pem, &cert.display().to_string(), &key.display().to_string())
    }

    /// Checks a PEM certificate chain and private key given in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsIdentity, TlsError> {
        Self::checked(cert_pem.to_vec(), key_pem.to_vec(), "(in memory)", "(in memory)")
    }

    fn checked(
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
        cert_name: &str,
        key_name: &str,
    ) -> Result<TlsIdentity, TlsError> {
        if !contains(&cert_pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(TlsError::NoCertificate(cert_name.to_owned()));
        }
        if !contains(&key_pem, b"PRIVATE KEY-----") {
            return Err(TlsError::NoPrivateKey(key_name.to_owned()));
        }
        let identity = TlsIdentity { cert_pem, key_pem };
        // The same acceptor the server will build: parses both and checks that the key is the
        // certificate's, so a bad pair fails here rather than at the first handshake.
        Server::builder()
            .tls_config(identity.server_config())
            .map_err(|e| TlsError::Refused(error_chain(&e)))?;
        Ok(identity)
    }

    /// tonic's configuration for this identity (HTTP/2 by ALPN, no client certificates).
    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(TLS_HANDSHAKE_TIMEOUT)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An error and its sources, joined with `: ` (tonic's own display says only "transport error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
