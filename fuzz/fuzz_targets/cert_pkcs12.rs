//! Untrusted PKCS#12 files through the certstore importer (p12-keystore
//! underneath): decoding, MAC check, decryption, key and certificate matching.
//! The first byte picks one of a few passphrases so both the wrong-passphrase
//! path and the decryption path get exercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_certstore::pkcs12;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let pass = ["", "pw", "s3cret"][usize::from(sel % 3)];
    let _ = pkcs12::read(rest, pass, "fuzz");
});
