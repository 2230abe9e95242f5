//! C ABI of validator reports: `blockdelta_report`, read by index, freed by the caller.

use super::*;

struct Entry {
    rule: u32,
    unit: u32,
    found: u64,
    limit: u64,
    subject: String,
    message: String,
}

/// Every failed check of one validation (VM rules 1-99, configuration server rules 101-199;
/// see docs/SUPPORT.md). Opaque; read-only once made; any thread may read it.
pub struct blockdelta_report {
    entries: Vec<Entry>,
}

impl blockdelta_report {
    pub(super) fn from<R: Copy + PartialEq + Into<u32>>(r: Report<R>) -> Self {
        let entries = r
            .failures
            .into_iter()
            .map(|f: Failure<R>| Entry {
                rule: f.rule.into(),
                unit: f.unit as u32,
                found: f.found,
                limit: f.limit,
                subject: f.subject,
                message: f.message,
            })
            .collect();
        blockdelta_report { entries }
    }

    fn entry(&self, index: usize) -> Result<&Entry, blockdelta_result> {
        self.entries
            .get(index)
            .ok_or_else(|| invalid("failure index out of range"))
    }
}

impl From<crate::support::VmRule> for u32 {
    fn from(r: crate::support::VmRule) -> u32 {
        r as u32
    }
}

impl From<crate::support::ConfigServerRule> for u32 {
    fn from(r: crate::support::ConfigServerRule) -> u32 {
        r as u32
    }
}

/// One failed check. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_failure {
    /// The rule (VM rules 1-99, configuration server rules 101-199).
    pub rule: u32,
    /// The unit of `found` and `limit` (0 none, 1 bytes, 2 count, 3 characters, 4 bits, 5 flag,
    /// 6 agent version as major << 16 | minor, 7 code point, 8 disk index, 9 port).
    pub unit: u32,
    /// The value found.
    pub found: u64,
    /// The limit.
    pub limit: u64,
}

/// The number of failures in `report` (0 when everything passed, or when `report` is NULL).
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_count(report: *const blockdelta_report) -> usize {
    boundary_value(0, || {
        // SAFETY: NULL or a live report, per the documentation.
        unsafe { report.as_ref() }.map_or(0, |r| r.entries.len())
    })
}

/// Failure `index` of `report`. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_failure(
    report: *const blockdelta_report,
    index: usize,
    failure_out: *mut blockdelta_failure,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(failure_out)?;
        // SAFETY: a live report, per the documentation.
        let e = unsafe { arg_ref(report)? }.entry(index)?;
        let v = blockdelta_failure {
            rule: e.rule,
            unit: e.unit,
            found: e.found,
            limit: e.limit,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies failure `index`'s message (a sentence naming the values) into `buf`, snprintf-style.
/// Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_message(
    report: *const blockdelta_report,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live report and a writable (buf, cap), per the documentation.
        unsafe { copy_str(&arg_ref(report)?.entry(index)?.message, buf, cap, len_out) }
    })
}

/// Copies failure `index`'s subject (the disk, volume, role or port; empty for the whole
/// machine) into `buf`, snprintf-style. Never blocks; any thread.
#[no_mangle]
pub extern "C" fn blockdelta_report_subject(
    report: *const blockdelta_report,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live report and a writable (buf, cap), per the documentation.
        unsafe { copy_str(&arg_ref(report)?.entry(index)?.subject, buf, cap, len_out) }
    })
}

/// Frees a report; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_report_free(report: *mut blockdelta_report) {
    // SAFETY: NULL or a report from this library, freed once, per the documentation.
    boundary_value((), || unsafe { free_handle(report) })
}
