//! A throwaway certificate authority for the HTTPS test server.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// A throwaway certificate authority (rcgen 0.13, ring) and server certificates signed by it.
pub struct TestCa {
    name: String,
    cert: Certificate,
    key: KeyPair,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A TLS server configuration (HTTP/1.1) with a fresh certificate for `hosts` signed by
    /// this CA.
    pub fn server_tls_config(&self, hosts: &[&str]) -> Result<Arc<rustls::ServerConfig>> {
        let (chain_pem, key_pem) = self.issue_server_cert(hosts)?;
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("cannot parse the server certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .context("cannot parse the server key")?;
        // The provider is named explicitly so that whichever rustls backends other crates
        // enable, no process-wide default has to be installed.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("cannot configure the server certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Creates a self-signed CA whose subject common name is `name`.
    pub fn new(name: &str) -> Result<Self> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params);
        let key = KeyPair::generate().context("cannot generate the CA key")?;
        let cert = params
            .self_signed(&key)
            .context("cannot self-sign the CA certificate")?;
        Ok(Self {
            name: name.to_owned(),
            cert,
            key,
        })
    }

    /// The CA certificate in PEM form, for a client's trust store (`http.sslCAInfo`).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Issues a server certificate for `hosts` (IP addresses such as 127.0.0.1 become IP SANs,
    /// anything else a DNS SAN) and returns the certificate chain and the private key, in PEM.
    pub fn issue_server_cert(&self, hosts: &[&str]) -> Result<(String, String)> {
        let mut params = CertificateParams::default();
        params.distinguished_name =
            distinguished_name(hosts.first().copied().unwrap_or("reposync test server"));
        params.subject_alt_names = hosts
            .iter()
            .map(|host| match host.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => {
                    Ok(SanType::DnsName((*host).try_into().with_context(|| {
                        format!("{host:?} is not a valid DNS name")
                    })?))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        // The key is ECDSA, which only signs; keyEncipherment would be meaningless for it.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params);
        let key = KeyPair::generate().context("cannot generate the server key")?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .context("cannot sign the server certificate")?;
        // The chain carries the CA too, as real servers commonly send intermediates; clients
        // still have to trust the CA themselves.
        let chain = format!("{}{}", cert.pem(), self.cert.pem());
        Ok((chain, key.serialize_pem()))
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "reposync tests");
    name
}

/// Valid from yesterday (tolerating clock skew) for a year, like a real certificate, rather than
/// rcgen's default of 1975 to 4096.
fn set_validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
}
