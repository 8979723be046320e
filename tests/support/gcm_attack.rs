//! The published attack on a key that serves both raw AES blocks and AES-GCM: anyone who
//! can compute `E_K(x)` for chosen blocks (AES-CBC without padding and a chosen IV is such an
//! oracle) gets the GCM hash key `H = E_K(0^128)` and the GCM keystream `E_K(IV || ctr)`, and
//! so reads any GCM ciphertext under `K` without knowing its AAD (and can forge tags).

use openssl::symm::{encrypt_aead, Cipher, Crypter, Mode};

/// AES-GCM counter block `iv || ctr` (96-bit IVs).
fn counter_block(iv: &[u8; 12], ctr: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(iv);
    b[12..].copy_from_slice(&ctr.to_be_bytes());
    b
}

/// The plaintext of a GCM `body` (ciphertext, tag stripped) as the attack recovers it from
/// an oracle `block(x) = E_K(x)`: the keystream starts at counter 2 (counter 1 masks the tag).
pub fn recover_with_block_oracle(
    mut block: impl FnMut([u8; 16]) -> [u8; 16],
    iv: &[u8; 12],
    body: &[u8],
) -> Vec<u8> {
    body.chunks(16)
        .enumerate()
        .flat_map(|(i, chunk)| {
            let ks = block(counter_block(iv, 2 + i as u32));
            chunk.iter().zip(ks).map(|(c, k)| c ^ k).collect::<Vec<_>>()
        })
        .collect()
}

/// The hash key the oracle gives away.
pub fn hash_key(mut block: impl FnMut([u8; 16]) -> [u8; 16]) -> [u8; 16] {
    block([0u8; 16])
}

/// Positive control, on a key held locally: the attack recovers a GCM plaintext sealed with
/// an AAD it never sees, when the block oracle and GCM share the key. Run by every test
/// that then shows the attack failing against hkms, so a failure there means the defence
/// works, not that the attack code is wrong.
pub fn check_attack_on_a_shared_key() {
    let key = [0x42u8; 32];
    let iv = [7u8; 12];
    let secret = b"the attacker must not read this, ever.".to_vec();
    let mut tag = [0u8; 16];
    let body = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key,
        Some(&iv),
        b"aad the attacker does not know",
        &secret,
        &mut tag,
    )
    .unwrap();
    let ecb = |x: [u8; 16]| {
        let mut c = Crypter::new(Cipher::aes_256_ecb(), Mode::Encrypt, &key, None).unwrap();
        c.pad(false);
        let mut out = [0u8; 32];
        let n = c.update(&x, &mut out).unwrap();
        assert_eq!(n, 16);
        out[..16].try_into().unwrap()
    };
    assert_eq!(recover_with_block_oracle(ecb, &iv, &body), secret);
    assert_ne!(hash_key(ecb), [0u8; 16]);
}
