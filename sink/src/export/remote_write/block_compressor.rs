//! Snappy block-format compression of a body that is written in pieces.
//!
//! Snappy's block format compresses its input in independent 64 KiB blocks behind one varint of
//! the total length. [`BlockCompressor`] compresses each block as soon as the caller's buffer
//! holds a full one, so a large request body is never held uncompressed: the encoder's buffer
//! stays small and in cache. The output is byte-identical to compressing the whole body at once
//! with `snap::raw::Encoder` (tested). It owns no framing of what is compressed.

use prost::encoding::encode_varint;

/// Snappy's block size: blocks are compressed independently of each other.
const BLOCK_SIZE: usize = 1 << 16;

/// Room kept before the compressed blocks for the varint of the total length (the format
/// limits a body to `u32::MAX` bytes, so at most 5 bytes).
const HEADER_ROOM: usize = 5;

/// Reusable compressor state and output buffer.
pub struct BlockCompressor {
    encoder: snap::raw::Encoder,
    /// One compressed block, with the length varint `snap` puts in front of it.
    scratch: Vec<u8>,
    /// `HEADER_ROOM` bytes, then the compressed blocks so far.
    out: Vec<u8>,
    /// Uncompressed bytes taken so far.
    total: usize,
}

impl Default for BlockCompressor {
    fn default() -> Self {
        BlockCompressor {
            encoder: snap::raw::Encoder::new(),
            scratch: vec![0; snap::raw::max_compress_len(BLOCK_SIZE)],
            out: Vec::new(),
            total: 0,
        }
    }
}

impl BlockCompressor {
    /// Starts a new body.
    pub fn start(&mut self) {
        self.out.clear();
        self.out.resize(HEADER_ROOM, 0);
        self.total = 0;
    }

    /// Compresses every full block at the front of `input` and removes it from there.
    pub fn take_full_blocks(&mut self, input: &mut Vec<u8>) {
        if input.len() < BLOCK_SIZE {
            return;
        }
        let full = input.len() - input.len() % BLOCK_SIZE;
        for block in input[..full].chunks_exact(BLOCK_SIZE) {
            self.compress_block(block);
        }
        input.drain(..full);
    }

    /// Compresses the rest of the body (`input`, shorter than a block after
    /// [`Self::take_full_blocks`], or any length) and returns the whole compressed body.
    ///
    /// Panics if the body is longer than snappy's limit of `u32::MAX` bytes.
    pub fn finish(&mut self, input: &mut Vec<u8>) -> &[u8] {
        self.take_full_blocks(input);
        if !input.is_empty() {
            self.compress_block(input);
            input.clear();
        }
        assert!(
            u32::try_from(self.total).is_ok(),
            "snappy body of {} bytes is over the format's 4 GiB limit",
            self.total
        );
        let mut header = [0u8; HEADER_ROOM];
        let mut free = &mut header[..];
        encode_varint(self.total as u64, &mut free);
        let header_len = HEADER_ROOM - free.len();
        let start = HEADER_ROOM - header_len;
        self.out[start..HEADER_ROOM].copy_from_slice(&header[..header_len]);
        &self.out[start..]
    }

    fn compress_block(&mut self, block: &[u8]) {
        let n = self
            .encoder
            .compress(block, &mut self.scratch)
            .expect("scratch sized by max_compress_len of a block");
        let header_len = varint_len(block.len());
        self.out.extend_from_slice(&self.scratch[header_len..n]);
        self.total += block.len();
    }
}

fn varint_len(n: usize) -> usize {
    prost::encoding::encoded_len_varint(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::remote_write::encoder::compress_into;

    /// Repetitive text with some variation, like label blocks, of `len` bytes.
    fn body(len: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(len);
        let mut i = 0u64;
        while text.len() < len {
            text.extend_from_slice(
                format!("pod=reviews-{} le={} ", i % 37, i * 7919 % 101).as_bytes(),
            );
            i += 1;
        }
        text.truncate(len);
        text
    }

    #[test]
    fn pieces_compress_to_the_bytes_of_one_whole_compression() {
        let mut compressor = BlockCompressor::default();
        let mut whole = Vec::new();
        for len in [
            0,
            1,
            16,
            17,
            1000,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            5 * BLOCK_SIZE + 4321,
        ] {
            let input = body(len);
            compressor.start();
            let mut pending = Vec::new();
            // Uneven pieces, taking full blocks after each, as the encoder does.
            for piece in input.chunks(997) {
                pending.extend_from_slice(piece);
                compressor.take_full_blocks(&mut pending);
                assert!(pending.len() < BLOCK_SIZE);
            }
            let ours = compressor.finish(&mut pending).to_vec();
            assert!(pending.is_empty());
            assert_eq!(
                ours,
                compress_into(&mut snap::raw::Encoder::new(), &input, &mut whole),
                "length {len}"
            );
            let decoded = snap::raw::Decoder::new().decompress_vec(&ours).unwrap();
            assert_eq!(decoded, input, "length {len}");
        }
    }

    #[test]
    fn a_body_given_at_once_is_split_into_blocks_too() {
        let input = body(3 * BLOCK_SIZE + 5);
        let mut compressor = BlockCompressor::default();
        compressor.start();
        let mut pending = input.clone();
        let ours = compressor.finish(&mut pending).to_vec();
        let mut whole = Vec::new();
        assert_eq!(
            ours,
            compress_into(&mut snap::raw::Encoder::new(), &input, &mut whole)
        );
    }
}
