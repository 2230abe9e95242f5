//! Decoder entry points driven as from C (see `ffi/tests/common.rs`).

use crate::ffi::test_support::*;

#[test]
fn decoder_arguments_and_errors() {
    let mut src = new_source();
    let header = plain_header_frame(&mut src);
    let mut dec = null_mut();
    assert_eq!(blockdelta_decoder_new(null(), 0, null_mut()), NULL);
    assert_eq!(blockdelta_decoder_new(null(), 5, &mut dec), NULL);
    assert!(dec.is_null());
    blockdelta_decoder_free(null_mut());

    // With a secret, an unencrypted stream is refused (a possible downgrade). Dropping
    // this decoder wipes its copy of the secret.
    assert_eq!(
        blockdelta_decoder_new(SECRET.as_ptr(), SECRET.len(), &mut dec),
        OK
    );
    let mut rec = sentinel_record();
    let mut consumed = usize::MAX;
    assert_eq!(
        blockdelta_decoder_next(dec, header.as_ptr(), header.len(), &mut consumed, &mut rec),
        blockdelta_result::StreamEncryptionRequired
    );
    assert_eq!((rec.kind, consumed), (99, usize::MAX));
    let mut buf = [0 as c_char; 512];
    assert_eq!(
        blockdelta_decoder_last_error(dec, buf.as_mut_ptr(), buf.len(), null_mut()),
        OK
    );
    let full = message(&buf).to_owned();
    assert_eq!(full, StreamError::EncryptionRequired.to_string());
    check_copies(|b, c, l| blockdelta_decoder_last_error(dec, b, c, l), &full);
    blockdelta_decoder_free(dec);
    assert_eq!(
        blockdelta_decoder_last_error(null(), buf.as_mut_ptr(), buf.len(), null_mut()),
        NULL
    );

    // NULL handle, outputs and input with a length.
    assert_eq!(blockdelta_decoder_new(null(), 0, &mut dec), OK);
    let input = header.as_ptr();
    let len = header.len();
    assert_eq!(
        blockdelta_decoder_next(null_mut(), input, len, &mut consumed, &mut rec),
        NULL
    );
    assert_eq!(
        blockdelta_decoder_next(dec, input, len, null_mut(), &mut rec),
        NULL
    );
    assert_eq!(
        blockdelta_decoder_next(dec, input, len, &mut consumed, null_mut()),
        NULL
    );
    assert_eq!(
        blockdelta_decoder_next(dec, null(), len, &mut consumed, &mut rec),
        NULL
    );
    assert_eq!((rec.kind, consumed), (99, usize::MAX));
    assert_eq!(
        blockdelta_decoder_expect(null_mut(), null(), null(), 0, false),
        NULL
    );
    assert_eq!(blockdelta_decoder_finish(null()), NULL);
    let mut from = 0;
    assert_eq!(
        blockdelta_decoder_header(
            null(),
            null_mut(),
            null_mut(),
            &mut from,
            null_mut(),
            null_mut()
        ),
        NULL
    );
    // The replica is at checkpoint 40, the stream starts at 41: refused.
    assert_eq!(blockdelta_decoder_expect(dec, null(), null(), 40, true), OK);
    assert_eq!(
        blockdelta_decoder_next(dec, input, len, &mut consumed, &mut rec),
        blockdelta_result::StreamWrongSequence
    );
    assert_eq!(
        blockdelta_decoder_finish(dec),
        blockdelta_result::StreamPoisoned
    );
    blockdelta_decoder_free(dec);

    // Ids not checked (NULL) and no sequence check: the header passes; END never came.
    assert_eq!(blockdelta_decoder_new(null(), 0, &mut dec), OK);
    assert_eq!(blockdelta_decoder_expect(dec, null(), null(), 0, false), OK);
    assert_eq!(
        blockdelta_decoder_next(dec, input, len, &mut consumed, &mut rec),
        OK
    );
    assert_eq!((rec.kind, consumed), (BLOCKDELTA_RECORD_HEADER, len));
    assert_eq!(
        blockdelta_decoder_expect(dec, null(), null(), 0, false),
        blockdelta_result::StreamInvalidState,
        "too late once the header is decoded"
    );
    assert_eq!(
        blockdelta_decoder_finish(dec),
        blockdelta_result::StreamTruncated
    );
    blockdelta_decoder_free(dec);
}
