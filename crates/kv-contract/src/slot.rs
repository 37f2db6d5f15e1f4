//! Redis Cluster hash slots: which of the 16384 slots a key belongs to.
//!
//! A script may only touch keys of one slot on a cluster. The key codec relies on hash
//! tags (`{...}`) to keep related keys together; this module computes slots exactly as
//! Redis does (CRC16-XMODEM of the key, or of its hash tag, modulo 16384), so tests can
//! prove that claim for any prefix and name instead of trusting it.

/// The number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The bytes Redis hashes for `key`: the content of the first `{...}` when that content is
/// not empty, else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The hash slot of `key`, as `CLUSTER KEYSLOT` reports it.
pub fn hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// CRC16-CCITT (XMODEM variant: polynomial 0x1021, initial value 0), the checksum Redis
/// Cluster uses. Bitwise: keys are short, and a table would be 512 bytes of constants to
/// review.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // The standard check value of CRC16-XMODEM, also quoted by the Redis Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    /// Slots read from a real `redis-server --cluster-enabled yes` with `CLUSTER KEYSLOT`.
    #[test]
    fn slots_match_redis() {
        let table: &[(&str, u16)] = &[
            ("foo", 12182),
            ("bar", 5061),
            ("somekey", 11058),
            ("123456789", 12739),
            ("{user1000}.following", 3443),
            ("a{}b", 13694),
            ("{}x", 10595),
            ("x{y", 2740),
            ("x}y{z}", 8157),
            ("p:lock:{n}", 3432),
            ("p:lock:{n}:fence", 3432),
        ];
        for (key, slot) in table {
            assert_eq!(hash_slot(key.as_bytes()), *slot, "{key}");
        }
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(
            hash_tag(b"a{}b{c}"),
            b"a{}b{c}",
            "an empty first tag disables tags"
        );
        assert_eq!(hash_tag(b"x{y"), b"x{y");
        assert_eq!(hash_tag(b"a{b{c}d"), b"b{c");
    }
}
