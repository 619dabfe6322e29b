use rand::rngs::OsRng;
use rand::Rng;

/// `len` characters drawn uniformly from `alphabet` with the operating system's
/// CSPRNG. `gen_range` rejects biased samples, so every character is equally likely.
pub fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = OsRng;
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}
