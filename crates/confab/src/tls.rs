//! TLS: the rustls server configuration, from a configured certificate or from a self-signed
//! one that confab makes (and keeps in its data dir) so the official SDKs, which insist on
//! https for chat calls, work out of the box once the client trusts that certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{RootCertStore, ServerConfig};

use crate::tempdir::{create_private_dir_all, replace_file};

/// File names of the self-signed pair inside `<data_dir>/tls/`.
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// How long a self-signed certificate is valid. Short enough for platforms that cap server
/// certificate lifetimes (Apple: 825 days), long enough not to bother anyone.
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A stored self-signed certificate this close to expiry is replaced at start-up.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The crypto provider confab uses everywhere: ring (the workspace builds rustls without
/// aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide default provider, for code (e.g. an HTTP client) that builds
/// rustls configs without naming one. Another default installed first is left in place.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A PEM certificate chain and private key, as read or generated.
#[derive(Clone)]
pub struct PemPair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair").finish_non_exhaustive()
    }
}

/// The names a self-signed certificate must cover: the usual loopback names, plus the
/// configured host unless it is a wildcard address (which no client connects to by name).
pub fn subject_alt_names(host: &str) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let unspecified = host
        .parse::<IpAddr>()
        .map(|ip| ip.is_unspecified())
        .unwrap_or(false);
    let already = names.iter().any(|n| n.eq_ignore_ascii_case(host));
    if !host.is_empty() && !unspecified && !already {
        names.push(host.to_string());
    }
    names
}

/// A new self-signed certificate (ECDSA P-256) for `names`, valid from a day ago (clock skew
/// between machines) for [`SELF_SIGNED_VALIDITY`].
pub fn generate_self_signed(names: &[String]) -> anyhow::Result<PemPair> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(names.to_vec())
        .context("building the self-signed certificate's names")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "confab self-signed");
    dn.push(DnType::OrganizationName, "confab");
    params.distinguished_name = dn;
    // An explicit end-entity certificate that clients trust directly (REQUESTS_CA_BUNDLE,
    // NODE_EXTRA_CA_CERTS); OpenSSL and webpki both accept a trusted self-signed leaf.
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + SELF_SIGNED_VALIDITY;

    let key = KeyPair::generate().context("generating the self-signed certificate's key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the self-signed certificate")?;
    Ok(PemPair {
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    })
}

/// The self-signed pair in `dir` (`cert.pem`, `key.pem`), reused if present, matching, covering
/// `names` and not about to expire; otherwise a new pair replaces it. Returns the pair and
/// whether it was made now.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> anyhow::Result<(PemPair, bool)> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if cert_path.exists() || key_path.exists() {
        match reusable(&cert_path, &key_path, names) {
            Ok(pair) => return Ok((pair, false)),
            Err(reason) => tracing::info!(
                "replacing the self-signed certificate in {}: {reason:#}",
                dir.display()
            ),
        }
    }
    create_private_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pair = generate_self_signed(names)?;
    // The key first: a crash in between leaves a mismatched pair, which the next start
    // detects and replaces, never a certificate whose key is lost.
    replace_file(&key_path, &pair.key_pem, 0o600)
        .with_context(|| format!("writing {}", key_path.display()))?;
    // The certificate is public: clients (maybe running as another user) must read it.
    replace_file(&cert_path, &pair.cert_pem, 0o644)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    Ok((pair, true))
}

/// The stored pair, if it can serve `names` for at least [`RENEW_BEFORE`].
fn reusable(cert_path: &Path, key_path: &Path, names: &[String]) -> anyhow::Result<PemPair> {
    let pair = read_pair(cert_path, key_path)?;
    // Builds a config: fails if the key does not match the certificate.
    server_config(&pair)?;
    let (certs, _) = parse_pair(&pair)?;
    let cert = certs
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no certificate"))?;
    let at = now_plus(RENEW_BEFORE);
    covers(&cert, names, at)?;
    Ok(pair)
}

/// The time `later` from now.
fn now_plus(later: Duration) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs()) + later)
}

/// Checks that a self-signed certificate, trusted as its own root (as clients will), verifies
/// for every name in `names` at time `at`.
pub fn covers(
    cert: &CertificateDer<'static>,
    names: &[String],
    at: UnixTime,
) -> anyhow::Result<()> {
    let mut roots = RootCertStore::empty();
    roots
        .add(cert.clone())
        .map_err(|err| anyhow!("not a usable certificate: {err}"))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|err| anyhow!("{err}"))?;
    for name in names {
        let server_name = ServerName::try_from(name.as_str())
            .map_err(|err| anyhow!("{name:?} is not a valid server name: {err}"))?;
        verifier
            .verify_server_cert(cert, &[], &server_name, &[], at)
            .map_err(|err| anyhow!("does not verify for {name}: {err}"))?;
    }
    Ok(())
}

/// Reads a PEM certificate (chain) file and a PEM key file.
pub fn read_pair(cert_path: &Path, key_path: &Path) -> anyhow::Result<PemPair> {
    let cert_pem = std::fs::read(cert_path)
        .with_context(|| format!("reading TLS certificate {}", cert_path.display()))?;
    let key_pem = std::fs::read(key_path)
        .with_context(|| format!("reading TLS key {}", key_path.display()))?;
    Ok(PemPair { cert_pem, key_pem })
}

fn parse_pair(
    pair: &PemPair,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_slice_iter(&pair.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| anyhow!("the certificate file is not valid PEM: {err}"))?;
    if certs.is_empty() {
        bail!("the certificate file holds no PEM CERTIFICATE block");
    }
    let key = PrivateKeyDer::from_pem_slice(&pair.key_pem)
        .map_err(|err| anyhow!("the key file holds no valid PEM private key: {err}"))?;
    Ok((certs, key))
}

/// The rustls server configuration for `pair`: TLS 1.2 and 1.3, no client certificates, ALPN h2
/// then http/1.1.
pub fn server_config(pair: &PemPair) -> anyhow::Result<Arc<ServerConfig>> {
    let (certs, key) = parse_pair(pair)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("choosing TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| anyhow!("the TLS certificate and key cannot be used together: {err}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where the certificate lives and what keeps a temporary copy alive.
pub struct TlsSetup {
    pub config: Arc<ServerConfig>,
    /// The certificate file clients should trust (or the configured one).
    pub cert_path: PathBuf,
    /// True when confab made the certificate (self-signed), now or on an earlier run.
    pub self_signed: bool,
    /// For an in-memory server: the temporary directory holding the certificate, removed when
    /// this is dropped.
    pub temp_dir: Option<crate::tempdir::TempDir>,
}

/// Sets up TLS for a server: the configured pair if any; else the self-signed pair in
/// `<data_dir>/tls` (created or reused); else (in memory) a fresh self-signed pair written to
/// a temporary directory only so clients can trust it.
pub fn setup(
    configured: Option<(&Path, &Path)>,
    data_dir: Option<&Path>,
    host: &str,
) -> anyhow::Result<TlsSetup> {
    if let Some((cert_path, key_path)) = configured {
        let pair = read_pair(cert_path, key_path)?;
        let config = server_config(&pair).with_context(|| {
            format!(
                "TLS certificate {} / key {}",
                cert_path.display(),
                key_path.display()
            )
        })?;
        return Ok(TlsSetup {
            config,
            cert_path: absolute(cert_path),
            self_signed: false,
            temp_dir: None,
        });
    }
    let names = subject_alt_names(host);
    match data_dir {
        Some(data_dir) => {
            let dir = data_dir.join("tls");
            let (pair, created) = ensure_self_signed(&dir, &names)?;
            if created {
                tracing::info!(names = ?names, "made a self-signed certificate in {}", dir.display());
            }
            Ok(TlsSetup {
                config: server_config(&pair)?,
                cert_path: absolute(&dir.join(CERT_FILE)),
                self_signed: true,
                temp_dir: None,
            })
        }
        None => {
            let temp_dir = crate::tempdir::TempDir::new("tls")?;
            let pair = generate_self_signed(&names)?;
            let cert_path = temp_dir.path().join(CERT_FILE);
            replace_file(&cert_path, &pair.cert_pem, 0o644)
                .with_context(|| format!("writing {}", cert_path.display()))?;
            Ok(TlsSetup {
                config: server_config(&pair)?,
                cert_path,
                self_signed: true,
                temp_dir: Some(temp_dir),
            })
        }
    }
}

/// `path` made absolute against the current directory, for printing (clients run elsewhere).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TempDir;

    fn first_cert(pair: &PemPair) -> CertificateDer<'static> {
        parse_pair(pair).unwrap().0.remove(0)
    }

    #[test]
    fn names_include_a_specific_host_only() {
        assert_eq!(
            subject_alt_names("127.0.0.1"),
            ["localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(
            subject_alt_names("0.0.0.0"),
            ["localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(subject_alt_names("::"), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(
            subject_alt_names("LOCALHOST"),
            ["localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(
            subject_alt_names("chat.example.test"),
            ["localhost", "127.0.0.1", "::1", "chat.example.test"]
        );
        assert_eq!(
            subject_alt_names("[fd00::1]"),
            ["localhost", "127.0.0.1", "::1", "fd00::1"]
        );
    }

    #[test]
    fn self_signed_verifies_for_its_names_only() {
        let names = subject_alt_names("10.1.2.3");
        let pair = generate_self_signed(&names).unwrap();
        let cert = first_cert(&pair);
        covers(&cert, &names, UnixTime::now()).unwrap();
        assert!(covers(&cert, &["example.com".into()], UnixTime::now()).is_err());
        // Expired after its validity.
        let later = now_plus(SELF_SIGNED_VALIDITY + Duration::from_secs(60));
        assert!(covers(&cert, &names, later).is_err());
        let config = server_config(&pair).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn created_then_reused_then_replaced_when_names_change() {
        let dir = TempDir::new("tls-reuse").unwrap();
        let tls = dir.path().join("tls");
        let names = subject_alt_names("127.0.0.1");

        let (first, created) = ensure_self_signed(&tls, &names).unwrap();
        assert!(created);
        assert_eq!(std::fs::read(tls.join(CERT_FILE)).unwrap(), first.cert_pem);
        assert_eq!(std::fs::read(tls.join(KEY_FILE)).unwrap(), first.key_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f| std::fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(KEY_FILE), 0o600);
            assert_eq!(mode(CERT_FILE), 0o644);
        }

        let (second, created) = ensure_self_signed(&tls, &names).unwrap();
        assert!(!created, "a valid stored certificate is reused");
        assert_eq!(second.cert_pem, first.cert_pem);

        // A host the stored certificate does not cover: replaced.
        let names2 = subject_alt_names("192.0.2.7");
        let (third, created) = ensure_self_signed(&tls, &names2).unwrap();
        assert!(created);
        assert_ne!(third.cert_pem, first.cert_pem);
        covers(&first_cert(&third), &names2, UnixTime::now()).unwrap();
    }

    #[test]
    fn damaged_or_mismatched_pair_is_replaced() {
        let dir = TempDir::new("tls-damaged").unwrap();
        let names = subject_alt_names("127.0.0.1");
        let (first, _) = ensure_self_signed(dir.path(), &names).unwrap();

        // A key from another pair.
        let other = generate_self_signed(&names).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), &other.key_pem).unwrap();
        let (pair, created) = ensure_self_signed(dir.path(), &names).unwrap();
        assert!(created);
        assert_ne!(pair.cert_pem, first.cert_pem);
        server_config(&pair).unwrap();

        // Garbage.
        std::fs::write(dir.path().join(CERT_FILE), b"garbage").unwrap();
        let (_, created) = ensure_self_signed(dir.path(), &names).unwrap();
        assert!(created);
    }

    #[test]
    fn configured_pair_errors_are_clear() {
        let dir = TempDir::new("tls-configured").unwrap();
        let missing = dir.path().join("nope.pem");
        let err = setup(Some((&missing, &missing)), None, "127.0.0.1")
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("nope.pem"), "{err:#}");

        let a = generate_self_signed(&["localhost".into()]).unwrap();
        let b = generate_self_signed(&["localhost".into()]).unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, &a.cert_pem).unwrap();
        std::fs::write(&key, &b.key_pem).unwrap();
        let err = setup(Some((&cert, &key)), None, "127.0.0.1").err().unwrap();
        assert!(
            format!("{err:#}").contains("cannot be used together"),
            "{err:#}"
        );

        std::fs::write(&key, &a.key_pem).unwrap();
        let ok = setup(Some((&cert, &key)), None, "127.0.0.1").unwrap();
        assert!(!ok.self_signed);
        assert_eq!(ok.cert_path, cert);
    }

    #[test]
    fn in_memory_certificate_lives_in_a_temp_dir() {
        let tls = setup(None, None, "127.0.0.1").unwrap();
        assert!(tls.cert_path.is_file());
        let dir = tls.temp_dir.as_ref().unwrap().path().to_path_buf();
        // Only the certificate: the key never touches the disk.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        drop(tls);
        assert!(!dir.exists());
    }
}
