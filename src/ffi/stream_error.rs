//! `StreamError` -> `blockdelta_result`: the stream's C codes, kept on the C side of the line
//! (the core never imports `ffi`). Every variant maps to its own code, 1:1.

use super::result::{blockdelta_result, ToResult};
use crate::stream::StreamError;

impl ToResult for StreamError {
    fn to_result(&self) -> blockdelta_result {
        use blockdelta_result as R;
        use StreamError::*;
        match self {
            BadMagic { .. } => R::StreamBadMagic,
            UnsupportedVersion { .. } => R::StreamUnsupportedVersion,
            UnknownRequiredFeature { .. } => R::StreamUnknownRequiredFeature,
            UnsupportedCipher { .. } => R::StreamUnsupportedCipher,
            Truncated { .. } => R::StreamTruncated,
            FrameOutOfOrder { .. } => R::StreamFrameOutOfOrder,
            ChecksumMismatch { .. } => R::StreamChecksumMismatch,
            AuthenticationFailed { .. } => R::StreamAuthenticationFailed,
            OversizedLength { .. } => R::StreamOversizedLength,
            ExtentOverlap { .. } => R::StreamExtentOverlap,
            ExtentOutOfRange { .. } => R::StreamExtentOutOfRange,
            UnknownRequiredRecord { .. } => R::StreamUnknownRequiredRecord,
            MalformedFrame { .. } => R::StreamMalformedFrame,
            MalformedRecord { .. } => R::StreamMalformedRecord,
            UnknownCodec { .. } => R::StreamUnknownCodec,
            DecompressFailed { .. } => R::StreamDecompressFailed,
            InvalidHeader { .. } => R::StreamInvalidHeader,
            UnexpectedFrame { .. } => R::StreamUnexpectedFrame,
            EndMismatch { .. } => R::StreamEndMismatch,
            TrailingData { .. } => R::StreamTrailingData,
            KeyRequired => R::StreamKeyRequired,
            EncryptionRequired => R::StreamEncryptionRequired,
            WrongDisk { .. } => R::StreamWrongDisk,
            WrongGeneration { .. } => R::StreamWrongGeneration,
            WrongSequence { .. } => R::StreamWrongSequence,
            TargetTooSmall { .. } => R::StreamTargetTooSmall,
            Poisoned => R::StreamPoisoned,
            SourceIo { .. } => R::StreamSourceIo,
            TargetIo { .. } => R::StreamTargetIo,
            ResizeUnsupported { .. } => R::StreamResizeUnsupported,
            BufferTooSmall { .. } => R::BufferTooSmall,
            InvalidArgument { .. } => R::InvalidArgument,
            InvalidState { .. } => R::StreamInvalidState,
            Random => R::StreamRandom,
            AlreadyApplied { .. } => R::StreamAlreadyApplied,
            InvalidDiskSize { .. } => R::StreamInvalidDiskSize,
            SecretTooShort { .. } => R::StreamSecretTooShort,
            InvalidCheckpoint { .. } => R::StreamInvalidCheckpoint,
            CheckpointChecksumMismatch { .. } => R::StreamCheckpointChecksumMismatch,
        }
    }
}
