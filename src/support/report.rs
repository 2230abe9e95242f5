//! Validator reports: every failed check, with the value found and the limit.

use std::fmt;

/// The unit of a failure's `found` and `limit`. The values are stable (C API).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// No meaningful number (the message explains).
    None = 0,
    /// Bytes.
    Bytes = 1,
    /// A count (disks, cores, partitions).
    Count = 2,
    /// A length in characters.
    Characters = 3,
    /// Architecture bits (32, 64).
    Bits = 4,
    /// 1 for present/enabled, 0 for absent/disabled.
    Flag = 5,
    /// An agent version as `major << 16 | minor`.
    AgentVersion = 6,
    /// A Unicode code point (a character that is not allowed).
    CodePoint = 7,
    /// A disk index in the description.
    DiskIndex = 8,
    /// A TCP port.
    Port = 9,
}

/// One failed check.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure<R> {
    /// The rule that failed.
    pub rule: R,
    /// What failed (a disk, volume, role or port name); empty when it is the whole machine.
    pub subject: String,
    /// The value found.
    pub found: u64,
    /// The limit.
    pub limit: u64,
    /// The unit of `found` and `limit`.
    pub unit: Unit,
    /// A sentence naming the values.
    pub message: String,
}

impl<R> fmt::Display for Failure<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every failed check of one validation; empty when everything passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<R> {
    /// The failures, in the order the checks ran.
    pub failures: Vec<Failure<R>>,
}

impl<R: Copy + PartialEq> Report<R> {
    /// True when no check failed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The failures of `rule`.
    pub fn of(&self, rule: R) -> impl Iterator<Item = &Failure<R>> {
        self.failures.iter().filter(move |f| f.rule == rule)
    }

    /// Whether `rule` failed.
    pub fn has(&self, rule: R) -> bool {
        self.of(rule).next().is_some()
    }

    pub(crate) fn push(
        &mut self,
        rule: R,
        subject: &str,
        found: u64,
        limit: u64,
        unit: Unit,
        message: String,
    ) {
        self.failures.push(Failure {
            rule,
            subject: subject.to_owned(),
            found,
            limit,
            unit,
            message,
        });
    }
}

impl<R> Default for Report<R> {
    fn default() -> Self {
        Report {
            failures: Vec::new(),
        }
    }
}

/// Formats a byte count the way the matrix states sizes (binary units).
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)];
    for (name, u) in UNITS {
        if bytes >= u && bytes % u == 0 {
            return format!("{} {name}", bytes / u);
        }
    }
    format!("{bytes} bytes")
}

pub(crate) fn agent_value(v: super::AgentVersion) -> u64 {
    (v.major() as u64) << 16 | v.minor() as u64
}
