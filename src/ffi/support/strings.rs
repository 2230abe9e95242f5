//! NUL-terminated copies of the support tables' strings, for the C functions that hand them out
//! as static `const char *` (kernel range ends, operating system notes, feature notes, errata).
//!
//! The support module speaks Rust (`&'static str`); C needs a NUL after each string. The copies
//! are made once, from the public tables, on the first call that needs one; afterwards a lookup
//! takes no lock and allocates nothing. They live until the process ends, so the pointers are
//! static as documented.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::support::{errata, features, kernel_table, OsNote};

/// The copies of every string the tables hold, keyed by content.
static TABLE_COPIES: OnceLock<HashMap<&'static str, CString>> = OnceLock::new();

/// Copies of strings that were not in the tables when [`TABLE_COPIES`] was made (none are
/// expected: every string a query returns comes from the tables). Only ever grows.
static OTHER_COPIES: Mutex<Vec<(&'static str, &'static CStr)>> = Mutex::new(Vec::new());

fn table_copies() -> &'static HashMap<&'static str, CString> {
    TABLE_COPIES.get_or_init(|| {
        let ranges = kernel_table()
            .iter()
            .flat_map(|row| row.ranges)
            .flat_map(|r| [r.first, r.last]);
        let notes = OsNote::ALL.iter().map(|n| n.text());
        let feature_notes = features().iter().map(|f| f.note);
        let errata = errata().iter().flat_map(|e| [e.id, e.source, e.resolution]);
        ranges
            .chain(notes)
            .chain(feature_notes)
            .chain(errata)
            .map(|s| (s, nul_terminated(s)))
            .collect()
    })
}

/// `s` with a NUL appended (cut at an interior NUL, which the tables never contain).
fn nul_terminated(s: &str) -> CString {
    let end = s.find('\0').unwrap_or(s.len());
    CString::new(&s[..end]).unwrap_or_default()
}

/// A static NUL-terminated copy of the static string `s`, valid until the process ends.
pub(super) fn c_static(s: &'static str) -> *const c_char {
    if let Some(c) = table_copies().get(s) {
        return c.as_ptr();
    }
    let mut other = OTHER_COPIES.lock();
    if let Some((_, c)) = other.iter().find(|(k, _)| *k == s) {
        return c.as_ptr();
    }
    // Leaked on purpose: C callers may hold the pointer until the process ends.
    let c: &'static CStr = Box::leak(nul_terminated(s).into_boxed_c_str());
    other.push((s, c));
    c.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_match_the_tables_and_are_stable() {
        for s in [
            "4.4.0-21-generic",
            OsNote::ALL[0].text(),
            errata()[0].source,
        ] {
            let p = c_static(s);
            // SAFETY: `c_static` returns a static NUL-terminated string.
            assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), s);
            assert_eq!(c_static(s), p, "one copy per string");
        }
        assert!(table_copies().contains_key(features()[0].note));
        // A string the tables do not hold still gets a (single) copy.
        let p = c_static("not in any table");
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(p) }, c"not in any table");
        assert_eq!(c_static("not in any table"), p);
    }
}
