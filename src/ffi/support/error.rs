//! The support module's errors as C result codes: the one place that maps [`SupportError`] to
//! `blockdelta_result` (the support module itself knows nothing of C).

use crate::ffi::result::{blockdelta_result, ToResult};
use crate::support::SupportError;

impl ToResult for SupportError {
    fn to_result(&self) -> blockdelta_result {
        match self {
            SupportError::InvalidKernelVersion { .. } => {
                blockdelta_result::SupportInvalidKernelVersion
            }
            SupportError::InvalidAgentVersion { .. } => {
                blockdelta_result::SupportInvalidAgentVersion
            }
            SupportError::UnknownAgentVersion { .. } => {
                blockdelta_result::SupportUnknownAgentVersion
            }
            SupportError::UnknownDistribution { .. } => {
                blockdelta_result::SupportUnknownDistribution
            }
            SupportError::UnknownRelease { .. } => blockdelta_result::SupportUnknownRelease,
            SupportError::NoKernelTable { .. } => blockdelta_result::SupportNoKernelTable,
            SupportError::UnknownOperatingSystem { .. } => {
                blockdelta_result::SupportUnknownOperatingSystem
            }
            SupportError::InvalidOsVersion { .. } => blockdelta_result::SupportInvalidOsVersion,
            SupportError::UnknownFeature { .. } => blockdelta_result::SupportUnknownFeature,
            SupportError::UnknownStorageTarget { .. } => {
                blockdelta_result::SupportUnknownStorageTarget
            }
            SupportError::InvalidDescription { .. } => blockdelta_result::SupportInvalidDescription,
        }
    }
}
