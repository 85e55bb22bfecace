//! gRPC message counts of one stream, for `istio_request_messages_total` and
//! `istio_response_messages_total`.
//!
//! Two sources, as Istio has them: Envoy's `envoy.filters.http.grpc_stats` filter state when
//! that filter runs with `emit_filter_state` (its textual form `"<request>,<response>"`, or its
//! `FilterObject` protobuf), otherwise our own count of gRPC length-prefixed frames in the body
//! chunks. Counting needs only the 5-byte prefix of each message, so the glue reads at most 5
//! bytes per message whatever the message sizes. A long stream's counts are handed out as deltas
//! at every report interval and at its end ([`MessageTally`]). Pure logic: the glue supplies the
//! bytes and the counts.

use crate::store::counters::CounterValues;

/// Bytes of a gRPC frame prefix: a compressed flag and a 4-byte big-endian length.
pub(crate) const PREFIX_LEN: usize = 5;

/// Counts the gRPC messages of one direction of a stream across body chunks.
#[derive(Debug, Default, Clone)]
pub(crate) struct FrameCounter {
    /// Message bytes of the current frame not yet seen.
    remaining: u64,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    messages: u64,
}

impl FrameCounter {
    /// Walks one body chunk of `len` bytes. `read(offset, size)` returns up to `size` bytes of
    /// the chunk from `offset` (the host's body buffer); a failed read stops the walk for this
    /// chunk and loses no count already made.
    pub(crate) fn feed(
        &mut self,
        len: usize,
        mut read: impl FnMut(usize, usize) -> Option<Vec<u8>>,
    ) {
        let mut pos = 0usize;
        while pos < len {
            if self.remaining > 0 {
                let skip = self.remaining.min((len - pos) as u64);
                self.remaining -= skip;
                pos += skip as usize;
                continue;
            }
            let want = (PREFIX_LEN - self.prefix_len).min(len - pos);
            let Some(bytes) = read(pos, want).filter(|b| !b.is_empty()) else {
                return;
            };
            let got = bytes.len().min(want);
            self.prefix[self.prefix_len..self.prefix_len + got].copy_from_slice(&bytes[..got]);
            self.prefix_len += got;
            pos += got;
            if self.prefix_len == PREFIX_LEN {
                let length = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.messages += 1;
                self.remaining = u64::from(length);
                self.prefix_len = 0;
            }
        }
    }

    /// Messages whose prefix was seen.
    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }
}

/// What one stream's message counts have already handed out, so every report interval and the
/// stream's end hand out only what is new: the deltas add up to the largest count seen, and a
/// count read lower than before (a source that lags) hands out nothing and takes nothing back.
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageTally {
    handed_out: [u64; 2],
}

impl MessageTally {
    /// The `(request, response)` counts new since the last call, as the gRPC message counter
    /// values `[request, response, 0, 0]`; `None` when nothing is new.
    pub(crate) fn take_delta(&mut self, (request, response): (u64, u64)) -> Option<CounterValues> {
        let [request_before, response_before] = self.handed_out;
        let delta = [
            request.saturating_sub(request_before),
            response.saturating_sub(response_before),
            0,
            0,
        ];
        self.handed_out = [request.max(request_before), response.max(response_before)];
        (delta != [0; 4]).then_some(delta)
    }

    /// Whether `counts` hold anything not yet handed out.
    pub(crate) fn has_news(&self, (request, response): (u64, u64)) -> bool {
        request > self.handed_out[0] || response > self.handed_out[1]
    }
}

/// The `(request, response)` message counts of the grpc_stats filter state, in its textual form
/// `"3,5"` or as the `FilterObject` protobuf (fields 1 and 2, varints).
pub(crate) fn parse_grpc_stats(bytes: &[u8]) -> Option<(u64, u64)> {
    if let Some(text) = std::str::from_utf8(bytes).ok().filter(|t| t.contains(',')) {
        let (request, response) = text.trim().split_once(',')?;
        return Some((request.trim().parse().ok()?, response.trim().parse().ok()?));
    }
    let (mut request, mut response) = (0, 0);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (key, after_key) = varint(rest)?;
        let (value, after_value) = match key & 7 {
            0 => varint(after_key)?,
            _ => return None,
        };
        match key >> 3 {
            1 => request = value,
            2 => response = value,
            _ => {}
        }
        rest = after_value;
    }
    Some((request, response))
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    fn count_in_chunks(body: &[u8], chunk: usize) -> (u64, usize) {
        let mut c = FrameCounter::default();
        let mut reads = 0;
        for piece in body.chunks(chunk) {
            c.feed(piece.len(), |offset, size| {
                reads += 1;
                Some(piece[offset..(offset + size).min(piece.len())].to_vec())
            });
        }
        (c.messages(), reads)
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn counts_frames_however_the_body_is_split() {
        let mut body = Vec::new();
        for len in [0, 3, 1000, 5, 70_000] {
            body.extend(frame(len));
        }
        for chunk in [1, 2, 5, 7, 64, 16_384, body.len()] {
            assert_eq!(count_in_chunks(&body, chunk).0, 5, "chunk {chunk}");
        }
        let (_, reads) = count_in_chunks(&body, body.len());
        assert_eq!(reads, 5, "one 5-byte read per message in one chunk");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_failed_read_keeps_what_was_counted() {
        let body = [frame(2), frame(2)].concat();
        let mut c = FrameCounter::default();
        c.feed(body.len(), |offset, size| {
            (offset == 0).then(|| body[offset..offset + size].to_vec())
        });
        assert_eq!(c.messages(), 1);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_tally_hands_out_each_message_once() {
        let mut tally = MessageTally::default();
        assert!(!tally.has_news((0, 0)));
        assert_eq!(tally.take_delta((0, 0)), None, "nothing yet");
        assert!(tally.has_news((3, 0)));
        assert_eq!(tally.take_delta((3, 0)), Some([3, 0, 0, 0]));
        assert_eq!(tally.take_delta((3, 0)), None, "nothing new between ticks");
        assert!(!tally.has_news((3, 0)));
        assert_eq!(tally.take_delta((5, 7)), Some([2, 7, 0, 0]));
        assert_eq!(tally.take_delta((9, 7)), Some([4, 0, 0, 0]));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_tally_never_goes_backwards_nor_counts_twice() {
        let mut tally = MessageTally::default();
        let reads = [(4, 1), (2, 1), (4, 3), (6, 2), (6, 5)];
        let mut sums = [0u64; 2];
        for counts in reads {
            let news = tally.has_news(counts);
            let delta = tally.take_delta(counts);
            assert_eq!(news, delta.is_some(), "{counts:?}");
            if let Some([request, response, rest @ ..]) = delta {
                assert_eq!(rest, [0, 0]);
                sums[0] += request;
                sums[1] += response;
            }
        }
        assert_eq!(sums, [6, 5], "the deltas add up to the largest counts read");
        assert_eq!(
            tally.take_delta((1, 1)),
            None,
            "a lower read takes nothing back"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_both_forms_of_the_grpc_stats_state() {
        assert_eq!(parse_grpc_stats(b"3,5"), Some((3, 5)));
        assert_eq!(parse_grpc_stats(b"0,12"), Some((0, 12)));
        assert_eq!(
            parse_grpc_stats(&[0x08, 0x03, 0x10, 0xac, 0x02]),
            Some((3, 300))
        );
        assert_eq!(parse_grpc_stats(&[0x10, 0x01]), Some((0, 1)));
        assert_eq!(parse_grpc_stats(b"3;5"), None);
        assert_eq!(parse_grpc_stats(b"a,b"), None);
        assert_eq!(parse_grpc_stats(&[0x0a, 0x01, 0x00]), None, "not varints");
    }
}
