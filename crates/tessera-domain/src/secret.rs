use rand::Rng;

/// Bitcoin's base58: no 0/O/I/l, so ids and keys survive being read aloud or retyped.
pub(crate) const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// `len` characters drawn uniformly from `alphabet` by a CSPRNG. `ThreadRng` is
/// ChaCha12 seeded from the operating system and reseeded periodically: as strong as
/// `OsRng` for our purposes, without a `getrandom` system call per character (the
/// redemption path draws three ids per call).
pub fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    // `gen_range` rejects biased samples, so every character is equally likely.
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}
