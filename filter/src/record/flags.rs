//! Envoy's response flags: the `response.flags` bitmask to the `response_flags` label.
//!
//! Owns the bit-to-short-string table, which follows Envoy's `CoreResponseFlag` enum order
//! (`envoy/stream_info/stream_info.h`) and its short strings (`source/common/stream_info/utility.cc`).

use std::fmt::Write;

/// Short strings by bit position.
pub(crate) const SHORT_FLAGS: [&str; 29] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
];

/// Writes the flags as Envoy's short strings joined by `,` in bit order, `-` when none are set.
/// Bits Envoy added after this table are written as `0x<bit>` so they stay visible.
pub(crate) fn write_flags(out: &mut String, flags: u64) {
    if flags == 0 {
        out.push('-');
        return;
    }
    let mut first = true;
    for bit in 0..64 {
        if flags & (1u64 << bit) == 0 {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        match SHORT_FLAGS.get(bit) {
            Some(s) => out.push_str(s),
            None => {
                let _ = write!(out, "{:#x}", 1u64 << bit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(bits: u64) -> String {
        let mut s = String::new();
        write_flags(&mut s, bits);
        s
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn formats_in_bit_order() {
        assert_eq!(flags(0), "-");
        assert_eq!(flags(0x2), "UH");
        assert_eq!(flags(0x100), "NR");
        assert_eq!(flags(0x4000), "DC");
        assert_eq!(flags(0x20 | 0x8000), "UF,URX");
        assert_eq!(flags(0x40000), "DPE");
        assert_eq!(flags(0x10000000), "DR");
        assert_eq!(flags(1 << 29), "0x20000000");
    }
}
