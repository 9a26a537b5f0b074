//! Structure-aware PKCS#12 fuzzing of the certstore importer. `cert_pkcs12`
//! feeds raw bytes, which nearly always die at the outer DER layer or the
//! MAC check; here the input drives a builder that writes a well-formed PFX
//! (RFC 7292) whose contents are chosen by the fuzzer: safes in the clear or
//! PBES2-encrypted (PBKDF2-SHA256 with AES-256-CBC or AES-128-CBC), key bags
//! plain or shrouded, certificate bags, bags of unknown type and attributes,
//! each holding a real key or certificate (OpenSSL-made, in
//! `pkcs12_pool/`), a damaged copy of one, or raw bytes. The MAC is computed
//! over the fuzzed content with the passphrase the reader is given (or a
//! wrong one, or left out), so decryption, bag parsing and key/certificate
//! matching are reached on most inputs.
//!
//! Oracle: when the file holds one unmodified pool key, its own certificate
//! and only unmodified pool certificates, with the right passphrase and a
//! supported cipher, reading must succeed and pick that certificate as the
//! leaf.
#![no_main]

use der::Encode;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pkcs5::pbes2;
use pkcs12::kdf::{Pkcs12KeyType, derive_key_utf8};
use portcullis_certstore::pkcs12 as certstore_pkcs12;

/// Real keys (PKCS#8 DER) and the certificates for them, from OpenSSL
/// (fuzz/seeds/make.sh writes them). Key `i` belongs to certificate `i`.
const KEYS: [&[u8]; 2] = [
    include_bytes!("pkcs12_pool/ec-key.p8.der"),
    include_bytes!("pkcs12_pool/rsa-key.p8.der"),
];
const CERTS: [&[u8]; 4] = [
    include_bytes!("pkcs12_pool/ec-leaf.der"),
    include_bytes!("pkcs12_pool/rsa.der"),
    include_bytes!("pkcs12_pool/ca.der"),
    include_bytes!("pkcs12_pool/ed25519.der"),
];
const PASSPHRASES: [&str; 3] = ["", "pw", "s3cret"];

// Object identifiers (DER content octets).
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const OID_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const OID_SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];
const OID_CERT_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
];
const OID_SECRET_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x05,
];
const OID_X509_CERT: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
const OID_SDSI_CERT: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x02];
const OID_FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
const OID_LOCAL_KEY_ID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15];
const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// One DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}
fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}
fn oid(o: &[u8]) -> Vec<u8> {
    tlv(0x06, o)
}
fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}
fn explicit0(b: &[u8]) -> Vec<u8> {
    tlv(0xa0, b)
}
fn small_int(v: u8) -> Vec<u8> {
    if v < 0x80 {
        tlv(0x02, &[v])
    } else {
        tlv(0x02, &[0, v])
    }
}

/// True once in `n` draws, and false when the input is used up (where
/// `Unstructured::ratio` answers true), so short inputs build regular files.
fn rare(u: &mut Unstructured, n: u8) -> Result<bool> {
    Ok(u.int_in_range(1..=n)? == n)
}

/// Tracks what the oracle needs to know about the file being built.
#[derive(Default)]
struct Facts {
    /// Pool keys placed unmodified, by index; `None` entries: other keys.
    keys: Vec<Option<usize>>,
    /// Pool certificates placed unmodified.
    certs: Vec<usize>,
    /// Something the reader may rightly refuse or ignore was placed.
    irregular: bool,
}

/// Bytes for a bag: a pool item, a damaged copy of one, or raw input.
fn content(u: &mut Unstructured, pool: &[&[u8]], placed: &mut Option<usize>) -> Result<Vec<u8>> {
    let index = u.choose_index(pool.len())?;
    match u.int_in_range(0..=5u8)? {
        0..=3 => {
            *placed = Some(index);
            Ok(pool[index].to_vec())
        }
        4 => {
            // A damaged copy: some bytes overwritten, maybe truncated.
            let mut b = pool[index].to_vec();
            let at = u.choose_index(b.len())?;
            let patch: Vec<u8> = u.arbitrary()?;
            for (i, p) in patch.iter().enumerate() {
                if let Some(x) = b.get_mut(at + i) {
                    *x = *p;
                }
            }
            if u.arbitrary()? {
                b.truncate(u.choose_index(b.len() + 1)?);
            }
            Ok(b)
        }
        _ => u.arbitrary(),
    }
}

/// PBES2 encryption with the reader's passphrase (or, sometimes, another).
/// Returns the AlgorithmIdentifier and the ciphertext.
fn encrypt(
    u: &mut Unstructured,
    pass: &str,
    plain: &[u8],
    facts: &mut Facts,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let salt: [u8; 8] = u.arbitrary()?;
    let iv: [u8; 16] = u.arbitrary()?;
    let iterations = u.int_in_range(1..=3u32)?;
    let params = if u.arbitrary()? {
        pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(iterations, &salt, iv)
    } else {
        pbes2::Parameters::generate_pbkdf2_sha256_aes128cbc(iterations, &salt, iv)
    }
    .expect("valid PBES2 parameters");
    let key_pass = if rare(u, 16)? {
        facts.irregular = true;
        "wrong"
    } else {
        pass
    };
    let ciphertext = params.encrypt(key_pass, plain).expect("AES-CBC encryption");
    let params_der = params.to_der().expect("PBES2 parameters encode");
    // id-PBES2 1.2.840.113549.1.5.13
    let alg = seq(&[
        &oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d]),
        &params_der,
    ]);
    Ok((alg, ciphertext))
}

fn attributes(u: &mut Unstructured, facts: &mut Facts) -> Result<Vec<u8>> {
    let mut attrs = Vec::new();
    if u.arbitrary()? {
        let id: Vec<u8> = u.arbitrary()?;
        attrs.push(seq(&[&oid(OID_LOCAL_KEY_ID), &tlv(0x31, &octets(&id))]));
    }
    if u.arbitrary()? {
        let name: String = u.arbitrary()?;
        let bmp: Vec<u8> = name.encode_utf16().flat_map(u16::to_be_bytes).collect();
        attrs.push(seq(&[
            &oid(OID_FRIENDLY_NAME),
            &tlv(0x31, &tlv(0x1e, &bmp)),
        ]));
    }
    if rare(u, 8)? {
        let raw: Vec<u8> = u.arbitrary()?;
        attrs.push(raw);
        facts.irregular = true;
    }
    Ok(if attrs.is_empty() && u.arbitrary()? {
        Vec::new()
    } else {
        tlv(0x31, &attrs.concat())
    })
}

fn bag(u: &mut Unstructured, pass: &str, facts: &mut Facts) -> Result<Vec<u8>> {
    let (bag_id, value) = match u.int_in_range(0..=9u8)? {
        0..=2 => {
            let mut placed = None;
            let key = content(u, &KEYS, &mut placed)?;
            let (alg, ct) = encrypt(u, pass, &key, facts)?;
            facts.keys.push(placed);
            (OID_SHROUDED_KEY_BAG, seq(&[&alg, &octets(&ct)]))
        }
        3 => {
            let mut placed = None;
            let key = content(u, &KEYS, &mut placed)?;
            facts.keys.push(placed);
            (OID_KEY_BAG, key)
        }
        4..=7 => {
            let mut placed = None;
            let cert = content(u, &CERTS, &mut placed)?;
            match placed {
                Some(i) => facts.certs.push(i),
                None => facts.irregular = true,
            }
            let kind = if rare(u, 16)? {
                facts.irregular = true;
                OID_SDSI_CERT
            } else {
                OID_X509_CERT
            };
            (OID_CERT_BAG, seq(&[&oid(kind), &explicit0(&octets(&cert))]))
        }
        8 => {
            facts.irregular = true;
            (OID_SECRET_BAG, u.arbitrary::<Vec<u8>>()?)
        }
        _ => {
            // A bag of a type the reader skips.
            facts.irregular = true;
            (OID_DATA, u.arbitrary::<Vec<u8>>()?)
        }
    };
    let attrs = attributes(u, facts)?;
    Ok(seq(&[&oid(bag_id), &explicit0(&value), &attrs]))
}

/// One ContentInfo of the AuthenticatedSafe.
fn safe(u: &mut Unstructured, pass: &str, facts: &mut Facts) -> Result<Vec<u8>> {
    let contents = if rare(u, 16)? {
        facts.irregular = true;
        u.arbitrary::<Vec<u8>>()?
    } else {
        let n = u.int_in_range(0..=3u8)?;
        let mut bags = Vec::new();
        for _ in 0..n {
            bags.push(bag(u, pass, facts)?);
        }
        tlv(0x30, &bags.concat())
    };
    if u.arbitrary()? {
        Ok(seq(&[&oid(OID_DATA), &explicit0(&octets(&contents))]))
    } else {
        let (alg, ct) = encrypt(u, pass, &contents, facts)?;
        let info = seq(&[&oid(OID_DATA), &alg, &tlv(0x80, &ct)]);
        let encrypted = seq(&[&small_int(0), &info]);
        Ok(seq(&[&oid(OID_ENCRYPTED_DATA), &explicit0(&encrypted)]))
    }
}

/// The PKCS#12 MAC (RFC 7292 appendix B key derivation, then HMAC).
macro_rules! pkcs12_hmac {
    ($digest:ty, $pass:expr, $salt:expr, $iterations:expr, $data:expr) => {{
        let len = <$digest as hmac::digest::OutputSizeUser>::output_size();
        let key = derive_key_utf8::<$digest>($pass, $salt, Pkcs12KeyType::Mac, $iterations, len)
            .expect("PKCS#12 key derivation");
        let mut m = hmac::Hmac::<$digest>::new_from_slice(&key).expect("any HMAC key length");
        m.update($data);
        m.finalize().into_bytes().to_vec()
    }};
}

fn mac(digest: &[u8], pass: &str, salt: &[u8], iterations: u8, data: &[u8]) -> Vec<u8> {
    let iterations = i32::from(iterations);
    if digest == OID_SHA1 {
        pkcs12_hmac!(sha1::Sha1, pass, salt, iterations, data)
    } else {
        pkcs12_hmac!(sha2::Sha256, pass, salt, iterations, data)
    }
}

fn build(u: &mut Unstructured) -> Result<(Vec<u8>, &'static str, Facts)> {
    let pass = PASSPHRASES[u.choose_index(PASSPHRASES.len())?];
    let mut facts = Facts::default();
    let n = u.int_in_range(1..=3u8)?;
    let mut safes = Vec::new();
    for _ in 0..n {
        safes.push(safe(u, pass, &mut facts)?);
    }
    let auth_safe = tlv(0x30, &safes.concat());
    let content_info = seq(&[&oid(OID_DATA), &explicit0(&octets(&auth_safe))]);
    let mac_data = match u.int_in_range(0..=7u8)? {
        6 => Vec::new(), // no MAC: accepted, like OpenSSL's -nomac
        choice => {
            let digest = if choice % 2 == 0 {
                OID_SHA256
            } else {
                OID_SHA1
            };
            let salt: [u8; 8] = u.arbitrary()?;
            let iterations = u.int_in_range(1..=2u8)?;
            let mac_pass = if choice == 7 {
                facts.irregular = true;
                "not-the-passphrase"
            } else {
                pass
            };
            let value = mac(digest, mac_pass, &salt, iterations, &auth_safe);
            let alg = seq(&[&oid(digest), &[0x05, 0x00]]);
            seq(&[
                &seq(&[&alg, &octets(&value)]),
                &octets(&salt),
                &small_int(iterations),
            ])
        }
    };
    let pfx = seq(&[&small_int(3), &content_info, &mac_data]);
    Ok((pfx, pass, facts))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((pfx, pass, facts)) = build(&mut u) else {
        return;
    };
    let result = certstore_pkcs12::read(&pfx, pass, "fuzz.p12");
    if let Err(e) = &result {
        let _ = e.to_string();
    }
    // The oracle: a clean file with one pool key and its certificate.
    if let [Some(k)] = facts.keys[..]
        && !facts.irregular
        && facts.certs.contains(&k)
    {
        let contents = result.unwrap_or_else(|e| panic!("a valid PKCS#12 file was refused: {e}"));
        assert_eq!(
            contents.leaf.as_ref(),
            CERTS[k],
            "the leaf is the key's own certificate"
        );
        assert_eq!(contents.others.len(), facts.certs.len() - 1);
    }
});
