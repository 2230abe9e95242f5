//! Change-block tracking.
