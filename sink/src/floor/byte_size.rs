//! Sizes in config values: a plain number of bytes (`1048576`) or a number with a unit
//! (`512KiB`, `64MiB`, `1GiB`, or the decimal `KB`, `MB`, `GB`).
//!
//! Owns parsing and printing only; which sizes exist and their defaults belong to the sections
//! that use them.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes read from config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const UNITS: [(&str, u64); 7] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl ByteSize {
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// Parses `<integer>[unit]`; `None` for anything else (fractions, unknown units, overflow).
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    let value: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim_start();
    if unit.is_empty() {
        return Some(value);
    }
    let (_, scale) = UNITS.iter().find(|(name, _)| *name == unit)?;
    value.checked_mul(*scale)
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, scale) in &UNITS[..3] {
            if self.0 != 0 && self.0.is_multiple_of(*scale) {
                return write!(f, "{}{name}", self.0 / scale);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1048576, \"512KiB\", \"64MiB\" or \"1GiB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_byte_size(v).map(ByteSize).ok_or_else(|| {
                    E::custom(format!(
                        "{v:?} is not a size (use bytes, or KiB, MiB, GiB, KB, MB, GB)"
                    ))
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_suffixed_sizes() {
        assert_eq!(parse_byte_size("1048576"), Some(1 << 20));
        assert_eq!(parse_byte_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_byte_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_byte_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_byte_size("10KB"), Some(10_000));
        assert_eq!(parse_byte_size("7B"), Some(7));
        for bad in ["", "MiB", "1.5GiB", "1TiB", "-1", "99999999999999GiB"] {
            assert_eq!(parse_byte_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn prints_in_the_largest_binary_unit_that_divides() {
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(3 << 20).to_string(), "3MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536");
        assert_eq!(ByteSize(0).to_string(), "0");
        let back: ByteSize = serde_yaml::from_str(&ByteSize(48 << 20).to_string()).unwrap();
        assert_eq!(back, ByteSize(48 << 20));
        let err = serde_yaml::from_str::<ByteSize>("\"lots\"").unwrap_err();
        assert!(err.to_string().contains("is not a size"), "{err}");
    }
}
