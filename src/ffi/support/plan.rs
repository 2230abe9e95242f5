//! C ABI of the deployment planner: the `blockdelta_plan` builder and its verdicts.

use super::*;

/// A deployment plan: disks are added, then `blockdelta_plan_evaluate` computes the verdicts.
/// Opaque; one thread at a time (read-only accessors may run concurrently with each other).
pub struct blockdelta_plan {
    disks: Vec<DiskLoad>,
    result: Option<Plan>,
    last_error: LastError,
}

/// Makes an empty plan. Free with `blockdelta_plan_free`.
#[no_mangle]
pub extern "C" fn blockdelta_plan_new(plan_out: *mut *mut blockdelta_plan) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(plan_out)?;
        let h = into_handle(blockdelta_plan {
            disks: Vec::new(),
            result: None,
            last_error: LastError::new(),
        });
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees a plan; NULL is a no-op.
#[no_mangle]
pub extern "C" fn blockdelta_plan_free(plan: *mut blockdelta_plan) {
    // SAFETY: NULL or a handle from `blockdelta_plan_new`, freed once.
    boundary_value((), || unsafe { free_handle(plan) })
}

/// Adds a disk of machine `vm` (names copied) replicating to `target` (as for
/// `blockdelta_support_disk_churn_limit`), with its measured average and peak churn (bytes per
/// second), average write size (bytes) and daily churn (bytes; 0 derives it from the average).
/// Clears any earlier evaluation.
#[no_mangle]
pub extern "C" fn blockdelta_plan_add_disk(
    plan: *mut blockdelta_plan,
    vm: *const c_char,
    disk: *const c_char,
    target: u32,
    average_bytes_per_second: u64,
    peak_bytes_per_second: u64,
    average_io_bytes: u64,
    bytes_per_day: u64,
) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle, not used by another thread, per the documentation.
        let h = unsafe { arg_mut(plan)? };
        // SAFETY: NUL-terminated strings, per the documentation.
        let (vm, disk) = unsafe { (arg_str(vm)?, arg_str(disk)?) };
        let target = TargetStorage::from_u32(target).ok_or_else(|| {
            h.last_error.fail(SupportError::UnknownStorageTarget {
                input: target.to_string(),
            })
        })?;
        let mut d = DiskLoad::new(
            vm,
            disk,
            target,
            average_bytes_per_second,
            peak_bytes_per_second,
            average_io_bytes,
        );
        d.bytes_per_day = (bytes_per_day != 0).then_some(bytes_per_day);
        h.disks.push(d);
        h.result = None;
        Ok(())
    })
}

/// Evaluates the plan. Inconsistent input (a peak below its average, a disk listed twice)
/// gives BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION. Never blocks.
#[no_mangle]
pub extern "C" fn blockdelta_plan_evaluate(plan: *mut blockdelta_plan) -> blockdelta_result {
    boundary(|| {
        // SAFETY: a live handle, not used by another thread, per the documentation.
        let h = unsafe { arg_mut(plan)? };
        h.result = Some(crate::support::plan(&h.disks).map_err(|e| h.last_error.fail(e))?);
        Ok(())
    })
}

/// # Safety
/// `p` is NULL or a live plan.
unsafe fn evaluated<'a>(p: *const blockdelta_plan) -> Result<&'a Plan, blockdelta_result> {
    // SAFETY: per the caller's contract.
    let h = unsafe { arg_ref(p)? };
    h.result.as_ref().ok_or_else(|| {
        h.last_error.record(
            blockdelta_result::InvalidArgument,
            &"the plan is not evaluated",
        )
    })
}

/// The plan's totals. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_plan_totals {
    /// Process servers needed (at least 1).
    pub process_servers: u32,
    /// Number of machines.
    pub vms: usize,
    /// Total daily churn, bytes.
    pub bytes_per_day: u64,
}

/// The totals of an evaluated plan.
#[no_mangle]
pub extern "C" fn blockdelta_plan_get_totals(
    plan: *const blockdelta_plan,
    totals_out: *mut blockdelta_plan_totals,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(totals_out)?;
        // SAFETY: a live handle, per the documentation.
        let p = unsafe { evaluated(plan)? };
        let v = blockdelta_plan_totals {
            process_servers: p.process_servers,
            vms: p.vms.len(),
            bytes_per_day: p.bytes_per_day,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The verdict on one disk. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_plan_disk {
    /// The average churn is above the limit's rate.
    pub exceeds_rate: bool,
    /// The daily churn is above the limit's daily total.
    pub exceeds_daily: bool,
    /// The limit that applies: rate, bytes per second.
    pub limit_bytes_per_second: u64,
    /// The limit that applies: daily total, bytes.
    pub limit_bytes_per_day: u64,
    /// The daily churn used, bytes.
    pub bytes_per_day: u64,
}

/// The verdict on disk `index` (in the order added) of an evaluated plan.
#[no_mangle]
pub extern "C" fn blockdelta_plan_get_disk(
    plan: *const blockdelta_plan,
    index: usize,
    disk_out: *mut blockdelta_plan_disk,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(disk_out)?;
        // SAFETY: a live handle, per the documentation.
        let p = unsafe { evaluated(plan)? };
        let d = p
            .disks
            .get(index)
            .ok_or_else(|| invalid("disk index out of range"))?;
        let v = blockdelta_plan_disk {
            exceeds_rate: d.exceeds_rate,
            exceeds_daily: d.exceeds_daily,
            limit_bytes_per_second: d.limit.bytes_per_second(),
            limit_bytes_per_day: d.limit.bytes_per_day(),
            bytes_per_day: d.bytes_per_day,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// The verdict on one machine. A fixed value type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct blockdelta_plan_vm {
    /// Sum of its disks' average churn, bytes per second.
    pub average_bytes_per_second: u64,
    /// Sum of its disks' peak churn, bytes per second.
    pub peak_bytes_per_second: u64,
    /// Its daily churn, bytes.
    pub bytes_per_day: u64,
    /// Above the per-VM average limit.
    pub exceeds_average: bool,
    /// Above the per-VM peak limit.
    pub exceeds_peak: bool,
    /// Alone above one process server's daily limit.
    pub exceeds_process_server: bool,
    /// The process server (0-based) the plan puts it on.
    pub process_server: u32,
}

/// The verdict on machine `index` (in order of first appearance) of an evaluated plan; its
/// name is copied into `(name_buf, name_cap)` snprintf-style (`name_len_out` may be NULL).
#[no_mangle]
pub extern "C" fn blockdelta_plan_get_vm(
    plan: *const blockdelta_plan,
    index: usize,
    vm_out: *mut blockdelta_plan_vm,
    name_buf: *mut c_char,
    name_cap: usize,
    name_len_out: *mut usize,
) -> blockdelta_result {
    boundary(|| {
        let out = Out::new(vm_out)?;
        // SAFETY: a live handle, per the documentation.
        let p = unsafe { evaluated(plan)? };
        let m = p
            .vms
            .get(index)
            .ok_or_else(|| invalid("machine index out of range"))?;
        // SAFETY: a writable (name_buf, name_cap), per the documentation.
        unsafe { copy_str(&m.vm, name_buf, name_cap, name_len_out)? };
        let v = blockdelta_plan_vm {
            average_bytes_per_second: m.average_bytes_per_second,
            peak_bytes_per_second: m.peak_bytes_per_second,
            bytes_per_day: m.bytes_per_day,
            exceeds_average: m.exceeds_average,
            exceeds_peak: m.exceeds_peak,
            exceeds_process_server: m.exceeds_process_server,
            process_server: m.process_server,
        };
        // SAFETY: checked non-NULL; writable per the documentation.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// Copies the last error recorded on `plan` (see `blockdelta_last_error` for the buffer rules).
#[no_mangle]
pub extern "C" fn blockdelta_plan_last_error(
    plan: *const blockdelta_plan,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> blockdelta_result {
    // SAFETY: a live handle and a writable (buf, cap), per the documentation.
    boundary(|| unsafe { copy_handle_message(&arg_ref(plan)?.last_error, buf, cap, len_out) })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
