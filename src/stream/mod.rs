//! The delta stream (format, encoder, decoder, applier). See `docs/FORMAT.md`.
