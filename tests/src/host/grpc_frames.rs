//! gRPC over HTTP/2 bodies as bytes: length-prefixed messages (1 flag byte, 4-byte big-endian
//! length, message), cut into chunks, and Envoy's `envoy.filters.http.grpc_stats` filter state.
//!
//! The grpc_stats filter (with `emit_filter_state`) counts a message when it sees the message's
//! flag byte, writes its `GrpcStatsObject` once the first message is seen, and a Wasm
//! `get_property(["filter_state", "envoy.filters.http.grpc_stats"])` returns that object's
//! `serializeAsString()`: the ASCII text `<request_message_count>,<response_message_count>`.
//! Pure byte handling; the stream driver decides when chunks pass.

/// The flag byte plus the 4-byte length in front of every message.
pub const FRAME_HEADER_LEN: usize = 5;

/// The body of `messages` (their sizes in bytes), each framed as an uncompressed message.
pub fn frames(message_sizes: &[usize]) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        message_sizes.iter().sum::<usize>() + FRAME_HEADER_LEN * message_sizes.len(),
    );
    for (i, &size) in message_sizes.iter().enumerate() {
        body.push(0);
        body.extend_from_slice(&(size as u32).to_be_bytes());
        body.extend((0..size).map(|j| b'a' + ((i + j) % 26) as u8));
    }
    body
}

/// Cuts `body` into `chunks` pieces of near-equal size (earlier pieces one byte longer); fewer
/// when the body is shorter than that; none for an empty body.
pub fn split(body: &[u8], chunks: usize) -> Vec<Vec<u8>> {
    let pieces = chunks.clamp(1, body.len().max(1));
    if body.is_empty() {
        return Vec::new();
    }
    let (base, extra) = (body.len() / pieces, body.len() % pieces);
    let mut out = Vec::with_capacity(pieces);
    let mut at = 0;
    for i in 0..pieces {
        let len = base + usize::from(i < extra);
        out.push(body[at..at + len].to_vec());
        at += len;
    }
    out
}

/// Counts messages in a body that arrives in chunks, as Envoy's gRPC frame inspector does: a
/// message counts as soon as its flag byte has been seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameCounter {
    frames: u64,
    /// Bytes of the current frame's header still to read, then bytes of its payload.
    header_left: usize,
    header: Vec<u8>,
    payload_left: u64,
}

impl FrameCounter {
    /// Feeds a chunk; returns how many new messages started in it.
    pub fn inspect(&mut self, mut chunk: &[u8]) -> u64 {
        let before = self.frames;
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let take = (self.payload_left.min(chunk.len() as u64)) as usize;
                self.payload_left -= take as u64;
                chunk = &chunk[take..];
            } else if self.header_left == 0 {
                self.frames += 1;
                self.header_left = FRAME_HEADER_LEN - 1;
                self.header.clear();
                chunk = &chunk[1..];
            } else {
                let take = self.header_left.min(chunk.len());
                self.header.extend_from_slice(&chunk[..take]);
                self.header_left -= take;
                chunk = &chunk[take..];
                if self.header_left == 0 {
                    let len: [u8; 4] = self.header[..4].try_into().expect("4 length bytes");
                    self.payload_left = u64::from(u32::from_be_bytes(len));
                }
            }
        }
        self.frames - before
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }
}

/// The grpc_stats filter of one stream (configured with `emit_filter_state`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcStats {
    pub request: FrameCounter,
    pub response: FrameCounter,
    /// The filter state object exists once a message has been counted.
    written: bool,
}

impl GrpcStats {
    pub fn inspect_request(&mut self, chunk: &[u8]) {
        self.written |= self.request.inspect(chunk) > 0;
    }

    pub fn inspect_response(&mut self, chunk: &[u8]) {
        self.written |= self.response.inspect(chunk) > 0;
    }

    /// What `get_property(["filter_state", "envoy.filters.http.grpc_stats"])` returns, if the
    /// object exists yet.
    pub fn filter_state(&self) -> Option<Vec<u8>> {
        self.written
            .then(|| format!("{},{}", self.request.frames(), self.response.frames()).into_bytes())
    }
}

/// The property path (NUL-joined) of the object: `filter_state` + the filter's name.
pub const GRPC_STATS_PROPERTY: &str = "filter_state\0envoy.filters.http.grpc_stats";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_big_endian_lengths() {
        let body = frames(&[3, 0]);
        assert_eq!(body.len(), 2 * FRAME_HEADER_LEN + 3);
        assert_eq!(&body[..5], &[0, 0, 0, 0, 3]);
        assert_eq!(&body[8..13], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn split_keeps_every_byte_in_order() {
        let body: Vec<u8> = (0..10).collect();
        let chunks = split(&body, 3);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(chunks.concat(), body);
        assert_eq!(split(&body[..2], 5).len(), 2);
        assert!(split(&[], 4).is_empty());
    }

    #[test]
    fn messages_split_across_chunks_count_once_at_their_flag_byte() {
        let body = frames(&[10, 2000, 1]);
        let mut counter = FrameCounter::default();
        let counts: Vec<u64> = split(&body, 7).iter().map(|c| counter.inspect(c)).collect();
        assert_eq!(counter.frames(), 3);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        let mut byte_by_byte = FrameCounter::default();
        for b in &body {
            byte_by_byte.inspect(std::slice::from_ref(b));
        }
        assert_eq!(byte_by_byte.frames(), 3);
        // A message counts when its flag byte arrives, before its length or payload.
        let mut partial = FrameCounter::default();
        assert_eq!(partial.inspect(&body[..1]), 1);
    }

    #[test]
    fn filter_state_is_the_comma_separated_counts_once_written() {
        let mut stats = GrpcStats::default();
        assert_eq!(stats.filter_state(), None);
        stats.inspect_request(&frames(&[4]));
        stats.inspect_response(&frames(&[1, 1, 1]));
        assert_eq!(stats.filter_state().unwrap(), b"1,3".to_vec());
    }
}
