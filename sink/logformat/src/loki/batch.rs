//! `PushBatch`: collects log entries per stream label set, applies Loki's per-line limits (line
//! size: truncate or drop per config; structured metadata size and count: metadata stripped),
//! counts what it changed, and encodes a push body (protobuf, snappy block) with every stream's
//! entries in timestamp order. Owns batching and encoding; when to flush and how to send are the
//! sink's decisions.

use std::collections::HashMap;

use prost::Message;
use thiserror::Error;

use super::labels::StreamLabels;
use super::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

/// What to do with a line longer than `max_line_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizeLinePolicy {
    /// Keep the first `max_line_bytes` bytes (cut at a character boundary).
    Truncate,
    /// Leave the entry out.
    Drop,
}

/// Per-line limits, defaulting to Loki's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushBatchConfig {
    /// Loki's `max_line_size` (256 KiB).
    pub max_line_bytes: usize,
    pub oversize_lines: OversizeLinePolicy,
    /// Loki's `max_structured_metadata_size` (64 KiB; names plus values).
    pub max_structured_metadata_bytes: usize,
    /// Loki's `max_structured_metadata_entries_count` (128).
    pub max_structured_metadata_entries: usize,
}

impl Default for PushBatchConfig {
    fn default() -> Self {
        PushBatchConfig {
            max_line_bytes: 256 * 1024,
            oversize_lines: OversizeLinePolicy::Truncate,
            max_structured_metadata_bytes: 64 * 1024,
            max_structured_metadata_entries: 128,
        }
    }
}

/// One log line bound for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Nanoseconds since the Unix epoch (keep the source timestamp: Loki drops exact duplicates,
    /// which makes resending a batch safe).
    pub timestamp_ns: i64,
    pub line: String,
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// What [`PushBatch::push`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Accepted with its line cut to `max_line_bytes`.
    Truncated,
    /// Accepted without its structured metadata, which was over the size or count limit.
    MetadataStripped,
    /// Left out: the line was over `max_line_bytes` and the policy is `Drop`.
    Dropped,
}

/// What the batch changed or refused since it was last finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushBatchCounters {
    pub entries_accepted: u64,
    pub lines_truncated: u64,
    pub lines_dropped: u64,
    pub metadata_stripped: u64,
}

/// A finished batch, ready to POST to [`super::PUSH_PATH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPush {
    /// Snappy block-compressed `PushRequest`.
    pub body: Vec<u8>,
    pub streams: usize,
    pub entries: usize,
    /// Size of the protobuf before compression.
    pub uncompressed_bytes: usize,
    pub counters: PushBatchCounters,
}

/// Why a batch could not be encoded.
#[derive(Debug, Error)]
pub enum PushBatchError {
    #[error("snappy compression of a {size}-byte push body failed: {source}")]
    Compress {
        size: usize,
        #[source]
        source: snap::Error,
    },
}

#[derive(Debug)]
struct StreamEntries {
    labels: String,
    entries: Vec<EntryAdapter>,
}

/// Entries grouped by stream, in first-seen stream order.
#[derive(Debug)]
pub struct PushBatch {
    config: PushBatchConfig,
    stream_index: HashMap<String, usize>,
    streams: Vec<StreamEntries>,
    entry_count: usize,
    payload_bytes: usize,
    counters: PushBatchCounters,
    protobuf: Vec<u8>,
    compressor: snap::raw::Encoder,
}

impl PushBatch {
    pub fn new(config: PushBatchConfig) -> Self {
        PushBatch {
            config,
            stream_index: HashMap::new(),
            streams: Vec::new(),
            entry_count: 0,
            payload_bytes: 0,
            counters: PushBatchCounters::default(),
            protobuf: Vec::new(),
            compressor: snap::raw::Encoder::new(),
        }
    }

    /// Adds an entry to the stream named by `labels`, applying the per-line limits.
    pub fn push(&mut self, labels: &StreamLabels, mut entry: LogEntry) -> PushOutcome {
        let mut outcome = PushOutcome::Accepted;
        if entry.line.len() > self.config.max_line_bytes {
            match self.config.oversize_lines {
                OversizeLinePolicy::Drop => {
                    self.counters.lines_dropped += 1;
                    return PushOutcome::Dropped;
                }
                OversizeLinePolicy::Truncate => {
                    let mut cut = self.config.max_line_bytes;
                    while !entry.line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    entry.line.truncate(cut);
                    self.counters.lines_truncated += 1;
                    outcome = PushOutcome::Truncated;
                }
            }
        }
        let metadata_bytes: usize = entry
            .structured_metadata
            .iter()
            .map(|pair| pair.name.len() + pair.value.len())
            .sum();
        if metadata_bytes > self.config.max_structured_metadata_bytes
            || entry.structured_metadata.len() > self.config.max_structured_metadata_entries
        {
            entry.structured_metadata.clear();
            self.counters.metadata_stripped += 1;
            if outcome == PushOutcome::Accepted {
                outcome = PushOutcome::MetadataStripped;
            }
        }

        self.payload_bytes += entry.line.len()
            + entry
                .structured_metadata
                .iter()
                .map(|pair| pair.name.len() + pair.value.len())
                .sum::<usize>();
        let stream = match self.stream_index.get(labels.as_str()) {
            Some(&index) => index,
            None => {
                let index = self.streams.len();
                self.stream_index.insert(labels.as_str().to_owned(), index);
                self.streams.push(StreamEntries {
                    labels: labels.as_str().to_owned(),
                    entries: Vec::new(),
                });
                index
            }
        };
        self.streams[stream].entries.push(EntryAdapter {
            timestamp: Some(Timestamp::from_unix_nanos(entry.timestamp_ns)),
            line: entry.line,
            structured_metadata: entry.structured_metadata,
        });
        self.entry_count += 1;
        self.counters.entries_accepted += 1;
        outcome
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entry_count
    }

    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Bytes of lines and structured metadata held: what a flush-by-size decision should use.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Counters since the last finish.
    pub fn counters(&self) -> PushBatchCounters {
        self.counters
    }

    /// Moves the held entries into a `PushRequest`, each stream's entries sorted by timestamp
    /// (stable: equal timestamps keep arrival order). The batch is empty afterwards.
    pub fn take_request(&mut self) -> PushRequest {
        self.stream_index.clear();
        self.entry_count = 0;
        self.payload_bytes = 0;
        let streams = std::mem::take(&mut self.streams)
            .into_iter()
            .map(|mut stream| {
                stream.entries.sort_by_key(|entry| entry.timestamp);
                StreamAdapter {
                    labels: stream.labels,
                    entries: stream.entries,
                    hash: 0,
                }
            })
            .collect();
        PushRequest { streams }
    }

    /// Encodes and empties the batch; `Ok(None)` when it holds nothing. Counters restart at zero.
    pub fn finish(&mut self) -> Result<Option<EncodedPush>, PushBatchError> {
        let counters = std::mem::take(&mut self.counters);
        if self.is_empty() {
            return Ok(None);
        }
        let entries = self.entry_count;
        let request = self.take_request();
        self.protobuf.clear();
        request
            .encode(&mut self.protobuf)
            .expect("a Vec grows to fit any message");
        let body = self
            .compressor
            .compress_vec(&self.protobuf)
            .map_err(|source| PushBatchError::Compress {
                size: self.protobuf.len(),
                source,
            })?;
        Ok(Some(EncodedPush {
            body,
            streams: request.streams.len(),
            entries,
            uncompressed_bytes: self.protobuf.len(),
            counters,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pod: &str) -> StreamLabels {
        StreamLabels::new([("namespace", "shop"), ("pod", pod)]).unwrap()
    }

    fn entry(timestamp_ns: i64, line: &str) -> LogEntry {
        LogEntry {
            timestamp_ns,
            line: line.into(),
            structured_metadata: Vec::new(),
        }
    }

    fn lines(stream: &StreamAdapter) -> Vec<&str> {
        stream
            .entries
            .iter()
            .map(|entry| entry.line.as_str())
            .collect()
    }

    #[test]
    fn groups_by_stream_and_sorts_each_stably() {
        let mut batch = PushBatch::new(PushBatchConfig::default());
        batch.push(&labels("a"), entry(30, "a-30"));
        batch.push(&labels("b"), entry(5, "b-5"));
        batch.push(&labels("a"), entry(10, "a-10-first"));
        batch.push(&labels("a"), entry(10, "a-10-second"));
        batch.push(&labels("a"), entry(20, "a-20"));
        assert_eq!(batch.len(), 5);
        let request = batch.take_request();
        assert!(batch.is_empty());
        assert_eq!(request.streams.len(), 2);
        assert_eq!(request.streams[0].labels, r#"{namespace="shop", pod="a"}"#);
        assert_eq!(
            lines(&request.streams[0]),
            ["a-10-first", "a-10-second", "a-20", "a-30"]
        );
        assert_eq!(lines(&request.streams[1]), ["b-5"]);
    }

    #[test]
    fn truncates_or_drops_long_lines_and_counts_them() {
        let config = PushBatchConfig {
            max_line_bytes: 4,
            ..PushBatchConfig::default()
        };
        let mut batch = PushBatch::new(config.clone());
        assert_eq!(
            batch.push(&labels("a"), entry(1, "abcdef")),
            PushOutcome::Truncated
        );
        assert_eq!(
            batch.push(&labels("a"), entry(2, "abé")),
            PushOutcome::Accepted
        );
        assert_eq!(
            batch.push(&labels("a"), entry(3, "abcé")),
            PushOutcome::Truncated
        );
        assert_eq!(
            lines(&batch.take_request().streams[0]),
            ["abcd", "abé", "abc"]
        );
        assert_eq!(batch.counters().lines_truncated, 2);

        let mut batch = PushBatch::new(PushBatchConfig {
            oversize_lines: OversizeLinePolicy::Drop,
            ..config
        });
        assert_eq!(
            batch.push(&labels("a"), entry(1, "abcdef")),
            PushOutcome::Dropped
        );
        assert_eq!(
            batch.push(&labels("a"), entry(2, "abcd")),
            PushOutcome::Accepted
        );
        let counters = batch.counters();
        assert_eq!((counters.lines_dropped, counters.entries_accepted), (1, 1));
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn strips_oversized_structured_metadata() {
        let mut batch = PushBatch::new(PushBatchConfig {
            max_structured_metadata_bytes: 10,
            ..PushBatchConfig::default()
        });
        let mut big = entry(1, "line");
        big.structured_metadata.push(LabelPairAdapter {
            name: "path".into(),
            value: "/0123456789".into(),
        });
        assert_eq!(batch.push(&labels("a"), big), PushOutcome::MetadataStripped);
        let request = batch.take_request();
        assert!(request.streams[0].entries[0].structured_metadata.is_empty());
        assert_eq!(batch.counters().metadata_stripped, 1);
    }

    #[test]
    fn finish_encodes_snappy_block_protobuf_and_resets() {
        let mut batch = PushBatch::new(PushBatchConfig::default());
        assert!(batch.finish().unwrap().is_none());
        batch.push(&labels("a"), entry(2_000_000_003, "second"));
        batch.push(&labels("a"), entry(1_000_000_000, "first"));
        assert_eq!(batch.payload_bytes(), 11);
        let push = batch.finish().unwrap().unwrap();
        assert_eq!((push.streams, push.entries), (1, 2));
        assert_eq!(push.counters.entries_accepted, 2);
        let protobuf = snap::raw::Decoder::new()
            .decompress_vec(&push.body)
            .unwrap();
        assert_eq!(protobuf.len(), push.uncompressed_bytes);
        let request = PushRequest::decode(protobuf.as_slice()).unwrap();
        let stream = &request.streams[0];
        assert_eq!(lines(stream), ["first", "second"]);
        assert_eq!(
            stream.entries[1].timestamp,
            Some(Timestamp {
                seconds: 2,
                nanos: 3
            })
        );
        assert!(batch.is_empty());
        assert_eq!(batch.counters(), PushBatchCounters::default());
        assert_eq!(batch.payload_bytes(), 0);
    }
}
