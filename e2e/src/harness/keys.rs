//! Keys the data-safety writers use, the same in every suite.

/// SplitMix64's finalizer: a bijection, so distinct inputs give distinct keys.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The n-th BINARY(16) key, as a UUID column holds it: every third ends in
/// 0x00 and every sixth in 0x00 0x00 (the bytes row events strip), the rest
/// never do.
pub fn binary16(n: u64) -> Vec<u8> {
    let mut k = [mix(n).to_be_bytes(), mix(n ^ 0x5A5A_5A5A).to_be_bytes()].concat();
    if n.is_multiple_of(3) {
        k[15] = 0;
        if n.is_multiple_of(6) {
            k[14] = 0;
        }
    } else if k[15] == 0 {
        k[15] = 1;
    }
    k
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_keys_end_in_zero_bytes() {
        let keys: Vec<Vec<u8>> = (0..600).map(binary16).collect();
        assert_eq!(keys.iter().filter(|k| k[15] == 0).count(), 200);
        assert_eq!(keys.iter().filter(|k| k[14] == 0 && k[15] == 0).count(), 100);
        let distinct: std::collections::BTreeSet<&Vec<u8>> = keys.iter().collect();
        assert_eq!(distinct.len(), 600);
        assert_eq!(hex(&[0x00, 0xab]), "00AB");
    }
}
