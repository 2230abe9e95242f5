//! Change-block tracking.

mod extent;

pub use extent::{Extent, GenerationId};
