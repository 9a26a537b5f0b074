//! One ACME order from account to installed chain: load the account from
//! the store (or register one and store its key), order the entry's names,
//! answer each pending authorization with the chosen challenge, wait for
//! the CA to validate, finalize with a CSR for the entry's served or next
//! key, and install the chain. A failed validation is reported with the
//! CA's own words for each name (what it tried and what it got).

use std::sync::Arc;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use portcullis_certstore::{InstallReport, OrderKey, Store};

use super::AcmeSettings;
use super::http::AcmeHttp;
use super::http01::Http01Responder;
use super::tls_alpn01::TlsAlpnResponder;
use crate::dns::Resolver;

/// Why an order did not end with an installed certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The certificate store refused (entry missing, read-only, bad chain).
    #[error("certificate store: {0}")]
    Store(#[from] portcullis_certstore::Error),
    /// The ACME client could not be set up.
    #[error("ACME set-up: {0}")]
    Setup(String),
    /// Talking to the CA failed (network, TLS, a problem document).
    #[error("ACME server {directory}: {step}: {detail}")]
    Protocol {
        /// The directory URL.
        directory: String,
        /// What was being done.
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The CA offered no challenge of the chosen type for a name.
    #[error("the ACME server offers no {kind} challenge for {domain}; try --challenge {other}")]
    NoChallenge {
        /// The name.
        domain: String,
        /// The challenge type asked for.
        kind: ChallengeKind,
        /// The other type.
        other: ChallengeKind,
    },
    /// The CA could not validate control of one or more names.
    #[error("the ACME server could not validate {}: {}", .failures.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", "), .failures.iter().map(|(d, why)| format!("{d}: {why}")).collect::<Vec<_>>().join("; "))]
    ChallengeFailed {
        /// Each name that failed, with the CA's reason.
        failures: Vec<(String, String)>,
    },
}

/// Which challenge answers the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// `http-01`: the HTTP challenge listener (port 80).
    Http01,
    /// `tls-alpn-01`: an HTTPS listener with the TLS-ALPN-01 resolver (port 443).
    TlsAlpn01,
}

impl std::fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        })
    }
}

impl std::str::FromStr for ChallengeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http-01" => Ok(ChallengeKind::Http01),
            "tls-alpn-01" => Ok(ChallengeKind::TlsAlpn01),
            other => Err(format!(
                "unknown ACME challenge {other:?}: use http-01 or tls-alpn-01"
            )),
        }
    }
}

/// The responders that answer challenges (the listeners serve them).
#[derive(Debug, Clone, Default)]
pub struct Challenges {
    /// Served by an [`Http01Listener`](super::Http01Listener).
    pub http01: Option<Http01Responder>,
    /// Mounted on an HTTPS listener.
    pub tls_alpn01: Option<Arc<TlsAlpnResponder>>,
}

/// One order: the names of a store entry, for which key, answered how.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    /// The store entry (it must exist).
    pub entry: String,
    /// The names to certify; the first is the common name.
    pub domains: Vec<String>,
    /// The served key (renewal) or the next key of a rollover.
    pub key: OrderKey,
    /// The challenge type.
    pub challenge: ChallengeKind,
}

/// An ACME CA and the way to reach it.
#[derive(Debug, Clone)]
pub struct AcmeClient {
    settings: AcmeSettings,
    http: AcmeHttp,
}

impl AcmeClient {
    /// Trusts the store's enabled CA lists and `settings.server_roots` for
    /// the CA's HTTPS; resolves its host with `resolver`.
    pub fn new(
        settings: AcmeSettings,
        store: &Store,
        resolver: Option<Resolver>,
    ) -> Result<Self, AcmeError> {
        let mut roots = store.root_store()?;
        for root in &settings.server_roots {
            roots
                .add(root.clone())
                .map_err(|e| AcmeError::Setup(format!("ACME server CA: {e}")))?;
        }
        if roots.is_empty() {
            return Err(AcmeError::Setup(
                "no CA is trusted for the ACME server's certificate: enable a CA list (`portcullis ca list`) or name the server's CA".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = AcmeHttp::new(Arc::new(tls), resolver, settings.request_timeout);
        Ok(AcmeClient { settings, http })
    }

    /// The directory URL.
    pub fn directory(&self) -> &str {
        &self.settings.directory
    }

    fn protocol(&self, step: &'static str) -> impl Fn(instant_acme::Error) -> AcmeError + '_ {
        move |e| AcmeError::Protocol {
            directory: self.settings.directory.clone(),
            step,
            detail: e.to_string(),
        }
    }

    /// The account of this directory: the one whose key is in the store,
    /// or a new one (registered now, its key stored).
    async fn account(&self, store: &Store) -> Result<Account, AcmeError> {
        let builder = || Account::builder_with_http(Box::new(self.http.clone()));
        if let Some(stored) = store.acme_account(&self.settings.directory)? {
            let credentials: AccountCredentials = serde_json::from_value(stored).map_err(|e| {
                AcmeError::Setup(format!(
                    "the stored ACME account for {} cannot be read: {e}",
                    self.settings.directory
                ))
            })?;
            return builder()
                .from_credentials(credentials)
                .await
                .map_err(self.protocol("loading the account"));
        }
        let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(self.protocol("registering an account"))?;
        let json = serde_json::to_value(&credentials)
            .map_err(|e| AcmeError::Setup(format!("cannot store the ACME account: {e}")))?;
        store.save_acme_account(&self.settings.directory, json)?;
        Ok(account)
    }

    /// Runs one order to the end and installs the certificate.
    pub async fn obtain(
        &self,
        store: &Store,
        request: &OrderRequest,
        challenges: &Challenges,
    ) -> Result<InstallReport, AcmeError> {
        // Fail before talking to the CA: the entry must exist, and the CSR
        // must be possible (names valid; a next key staged if asked for).
        let csr = store.order_csr(&request.entry, &request.domains, request.key)?;
        let account = self.account(store).await?;
        let identifiers: Vec<Identifier> = request
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(self.protocol("creating the order"))?;
        let mut published = Published {
            challenges,
            tokens: Vec::new(),
            names: Vec::new(),
        };
        let result = async {
            self.answer_authorizations(&mut order, request.challenge, &mut published)
                .await?;
            let retry = RetryPolicy::new().timeout(self.settings.order_timeout);
            // An order that failed validation ends invalid, with a problem
            // document on the order; the reasons per name are on the
            // authorizations' challenges.
            match order.poll_ready(&retry).await {
                Ok(OrderStatus::Ready) => {}
                Ok(_) | Err(instant_acme::Error::Api(_)) => {
                    return Err(self.validation_failures(&mut order).await);
                }
                Err(e) => return Err(self.protocol("waiting for validation")(e)),
            }
            order
                .finalize_csr(&csr)
                .await
                .map_err(self.protocol("finalizing the order"))?;
            order
                .poll_certificate(&retry)
                .await
                .map_err(self.protocol("waiting for the certificate"))
        }
        .await;
        published.withdraw();
        let chain = result?;
        Ok(store.install_signed(
            &request.entry,
            chain.as_bytes(),
            &format!("the certificate from {}", self.settings.directory),
        )?)
    }

    async fn answer_authorizations(
        &self,
        order: &mut instant_acme::Order,
        kind: ChallengeKind,
        published: &mut Published<'_>,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(self.protocol("fetching an authorization"))?;
            match authz.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(AcmeError::ChallengeFailed {
                        failures: vec![(
                            authz.identifier().to_string(),
                            format!("the authorization is {other:?}"),
                        )],
                    });
                }
            }
            let domain = authz.identifier().to_string();
            let (wanted, other) = match kind {
                ChallengeKind::Http01 => (ChallengeType::Http01, ChallengeKind::TlsAlpn01),
                ChallengeKind::TlsAlpn01 => (ChallengeType::TlsAlpn01, ChallengeKind::Http01),
            };
            let Some(mut challenge) = authz.challenge(wanted) else {
                return Err(AcmeError::NoChallenge {
                    domain,
                    kind,
                    other,
                });
            };
            let key_authorization = challenge.key_authorization();
            match kind {
                ChallengeKind::Http01 => {
                    let Some(responder) = &published.challenges.http01 else {
                        return Err(AcmeError::Setup(
                            "http-01 needs the HTTP challenge listener, and none is running".into(),
                        ));
                    };
                    responder.insert(&challenge.token, key_authorization.as_str());
                    published.tokens.push(challenge.token.clone());
                }
                ChallengeKind::TlsAlpn01 => {
                    let Some(responder) = &published.challenges.tls_alpn01 else {
                        return Err(AcmeError::Setup(
                            "tls-alpn-01 needs an HTTPS listener with the TLS-ALPN-01 responder, and none is running".into(),
                        ));
                    };
                    responder
                        .insert(&domain, key_authorization.digest().as_ref())
                        .map_err(AcmeError::Setup)?;
                    published.names.push(domain.clone());
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(self.protocol("telling the server the challenge is ready"))?;
        }
        Ok(())
    }

    /// The CA's reasons, per name, after the order became invalid.
    async fn validation_failures(&self, order: &mut instant_acme::Order) -> AcmeError {
        let mut failures = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let Ok(mut authz) = authz else { continue };
            let _ = authz.refresh().await;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let why = authz
                .challenges
                .iter()
                .filter_map(|c| c.error.as_ref())
                .map(|p| {
                    let detail = p.detail.clone().unwrap_or_else(|| p.to_string());
                    match &p.r#type {
                        Some(t) => format!(
                            "{detail} ({})",
                            t.trim_start_matches("urn:ietf:params:acme:error:")
                        ),
                        None => detail,
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            let why = if why.is_empty() {
                format!("the authorization is {:?}", authz.status)
            } else {
                why
            };
            failures.push((authz.identifier().to_string(), why));
        }
        if failures.is_empty() {
            failures.push((
                "the order".to_owned(),
                "the server marked it invalid without saying why".to_owned(),
            ));
        }
        AcmeError::ChallengeFailed { failures }
    }
}

/// Challenge answers put up for one order, taken down when it ends.
struct Published<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Published<'_> {
    fn withdraw(&mut self) {
        if let Some(r) = &self.challenges.http01 {
            for t in self.tokens.drain(..) {
                r.remove(&t);
            }
        }
        if let Some(r) = &self.challenges.tls_alpn01 {
            for n in self.names.drain(..) {
                r.remove(&n);
            }
        }
    }
}
