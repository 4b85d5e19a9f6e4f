//! `aws` source (work in progress).

use super::{ErrorReason, ObservationSender, PollContext, SourceError};
use crate::config::AwsConfig;

#[derive(Debug, Clone)]
pub struct AwsSource {
    cfg: AwsConfig,
}

impl AwsSource {
    pub fn new(cfg: AwsConfig) -> Self {
        Self { cfg }
    }

    pub async fn poll(&self, _ctx: PollContext, _out: ObservationSender) -> Result<(), SourceError> {
        let _ = &self.cfg;
        Err(SourceError::new(ErrorReason::Io, "not implemented yet"))
    }
}
