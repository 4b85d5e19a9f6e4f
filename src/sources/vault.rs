//! `vault` source (work in progress).

use super::{ErrorReason, ObservationSender, PollContext, SourceError};
use crate::config::VaultConfig;

#[derive(Debug, Clone)]
pub struct VaultSource {
    cfg: VaultConfig,
}

impl VaultSource {
    pub fn new(cfg: VaultConfig) -> Self {
        Self { cfg }
    }

    pub async fn poll(&self, _ctx: PollContext, _out: ObservationSender) -> Result<(), SourceError> {
        let _ = &self.cfg;
        Err(SourceError::new(ErrorReason::Io, "not implemented yet"))
    }
}
