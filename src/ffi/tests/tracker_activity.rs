//! The activity log's C ABI driven as from C on a tracker whose state file and log live in
//! memory (a `TrackerStorage` with no file I/O), so that miri walks every pointer of the
//! writer handles: load, writer, a cold begin and its wait (a group commit with evictions),
//! hot begins and completions (own and remote), polling, stats, close.

use std::io;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::Mutex;

use super::*;
use crate::ffi::error::LastError;
use crate::ffi::tracker::blockdelta_tracker_close;
use crate::tracker::{
    ActivityLogConfig, PersistError, PersistOptions, ReadFailure, StateFile, TrackerConfig,
    TrackerStorage,
};

#[derive(Default)]
struct Memory {
    state: Mutex<Option<Vec<u8>>>,
    log: Mutex<Vec<u8>>,
}

impl TrackerStorage for Memory {
    fn name(&self) -> &Path {
        Path::new("memory.tracker")
    }
    fn lock(&self) -> Result<Box<dyn std::any::Any + Send + Sync>, PersistError> {
        Ok(Box::new(()))
    }
    fn read_state(&self, _max: u64) -> Result<Vec<u8>, ReadFailure> {
        self.state
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| ReadFailure::Io(io::ErrorKind::NotFound.into()))
    }
    fn replace_state(&self, bytes: &[u8]) -> Result<(), PersistError> {
        *self.state.lock().unwrap() = Some(bytes.to_vec());
        Ok(())
    }
    fn read_log(&self, _max: u64) -> Result<Vec<u8>, ReadFailure> {
        Ok(self.log.lock().unwrap().clone())
    }
    fn write_log(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut l = self.log.lock().unwrap();
        let end = offset as usize + bytes.len();
        if l.len() < end {
            l.resize(end, 0);
        }
        l[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }
    fn sync_log(&self) -> io::Result<()> {
        Ok(())
    }
    fn create_log(&self) -> io::Result<()> {
        Ok(())
    }
}

const BLOCK: u64 = 4096;
const REGION: u64 = 64 << 10;

fn tracker() -> *mut blockdelta_tracker {
    let config = TrackerConfig::new(16 * REGION).granularity(BLOCK as u32);
    let log = ActivityLogConfig::default()
        .region_size(REGION)
        .active_regions(2)
        .writers(2);
    let options = PersistOptions::new(*b"ffi-activity-t01").activity_log(log);
    let (inner, state, _) = StateFile::open_on(Box::<Memory>::default(), config, options).unwrap();
    crate::ffi::handle::into_handle(blockdelta_tracker {
        inner,
        state: Some(state),
        last_error: LastError::new(),
    })
}

/// begin, waiting on cold tickets; returns the token.
fn admit(t: *mut blockdelta_tracker, w: *mut blockdelta_tracker_writer, off: u64) -> u64 {
    loop {
        let (mut admitted, mut token, mut ticket) = (false, 0u64, 0u64);
        assert_eq!(
            blockdelta_tracker_writer_begin(w, off, BLOCK, &mut admitted, &mut token, &mut ticket),
            blockdelta_result::Ok
        );
        if admitted {
            assert!(token != 0 && ticket == 0);
            return token;
        }
        assert!(token == 0 && ticket != 0);
        let mut durable = true;
        assert_eq!(
            blockdelta_tracker_ticket_durable(t, ticket, &mut durable),
            blockdelta_result::Ok
        );
        assert!(!durable);
        assert_eq!(blockdelta_tracker_wait(t, ticket), blockdelta_result::Ok);
    }
}

#[test]
fn writers_admit_wait_complete_and_close_through_the_c_abi() {
    let t = tracker();
    let mut w = null_mut();
    assert_eq!(
        blockdelta_tracker_writer_new(t, &mut w),
        blockdelta_result::Ok
    );
    // Three regions through two slots: one eviction.
    for r in [0u64, 3, 7] {
        let token = admit(t, w, r * REGION);
        assert_eq!(
            blockdelta_tracker_writer_complete(w, token, r * REGION, BLOCK),
            blockdelta_result::Ok
        );
    }
    // A hot region, completed from "another thread" and as a discard.
    let token = admit(t, w, 7 * REGION + BLOCK);
    assert_eq!(
        blockdelta_tracker_complete(t, token, 7 * REGION + BLOCK, BLOCK),
        blockdelta_result::Ok
    );
    let token = admit(t, w, 7 * REGION);
    assert_eq!(
        blockdelta_tracker_writer_complete_discard(w, token, 7 * REGION, BLOCK),
        blockdelta_result::Ok
    );
    // Token 0 (a write told to wait) is refused.
    assert_eq!(
        blockdelta_tracker_writer_complete(w, 0, 0, BLOCK),
        blockdelta_result::InvalidArgument
    );
    assert_eq!(blockdelta_tracker_flush(t), blockdelta_result::Ok);
    let mut stats = blockdelta_activity_stats::default();
    assert_eq!(
        blockdelta_tracker_activity_stats(t, &mut stats),
        blockdelta_result::Ok
    );
    assert_eq!(
        (stats.activations, stats.evictions, stats.active),
        (3, 1, 2)
    );
    blockdelta_tracker_writer_free(w);
    assert_eq!(blockdelta_tracker_close(t), blockdelta_result::Ok);
}
