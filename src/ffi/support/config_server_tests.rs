//! Unit tests of [`super`]: they call its C entry points the way a C program does (raw
//! pointers, NUL-terminated strings, caller-owned buffers), so that `cargo miri test --lib
//! ffi::support` executes every `unsafe` block. tests/c/support.c covers the same ground from C.

use std::ptr::{null, null_mut};

use crate::ffi::support::test_util::*;
use crate::ffi::support::*;

#[test]
fn config_server_builder() {
    let mut cs = null_mut();
    assert_eq!(blockdelta_config_server_new(null_mut()), NULL_PARAMETER);
    ok(blockdelta_config_server_new(&mut cs));
    let mut r = null_mut();
    ok(blockdelta_config_server_validate(cs, &mut r));
    assert_eq!(blockdelta_report_count(r), 0);
    blockdelta_report_free(r);

    // A NULL locale refuses the whole call: the product is not changed either.
    assert_eq!(
        blockdelta_config_server_set_os(cs, c"Windows 10".as_ptr(), true, null()),
        NULL_PARAMETER
    );
    ok(blockdelta_config_server_validate(cs, &mut r));
    assert_eq!(blockdelta_report_count(r), 0);
    blockdelta_report_free(r);

    ok(blockdelta_config_server_set_hardware(
        cs,
        4,
        16 * GB,
        3,
        600 * GB,
        500 * GB,
    ));
    ok(blockdelta_config_server_set_os(
        cs,
        c"Windows Server 2016".as_ptr(),
        false,
        c"en-us".as_ptr(),
    ));
    ok(blockdelta_config_server_set_network(
        cs,
        true,
        c"E1000".as_ptr(),
        true,
    ));
    ok(blockdelta_config_server_add_port_in_use(cs, 9443));
    ok(blockdelta_config_server_add_role(cs, c"IIS".as_ptr()));
    ok(blockdelta_config_server_add_group_policy(
        cs,
        c"Turn on Script Execution".as_ptr(),
    ));
    ok(blockdelta_config_server_set_version(
        cs,
        c"9.13".as_ptr(),
        false,
    ));
    ok(blockdelta_config_server_validate(cs, &mut r));
    let mut got = rules(r);
    got.sort_unstable();
    assert_eq!(got, [101, 105, 107, 109, 111, 112, 113, 114]);
    blockdelta_report_free(r);

    assert_eq!(
        blockdelta_config_server_set_version(cs, c"nine".as_ptr(), false),
        blockdelta_result::SupportInvalidAgentVersion
    );
    let mut msg = [0u8; 128];
    let mut len = 0;
    ok(blockdelta_config_server_last_error(
        cs,
        msg.as_mut_ptr().cast(),
        msg.len(),
        &mut len,
    ));
    assert!(copied(&msg).contains("nine"), "{}", copied(&msg));
    assert_eq!(copied(&msg).len(), len);
    assert_eq!(
        blockdelta_config_server_add_role(null_mut(), c"IIS".as_ptr()),
        NULL_PARAMETER
    );
    assert_eq!(
        blockdelta_config_server_set_network(cs, true, null(), true),
        NULL_PARAMETER
    );
    assert_eq!(
        blockdelta_config_server_validate(null(), &mut r),
        NULL_PARAMETER
    );
    blockdelta_config_server_free(cs);
    blockdelta_config_server_free(null_mut());
}
