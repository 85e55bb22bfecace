//! A scrape body converted while it arrives, chunk by chunk: a body is never held whole, and
//! one the sink cannot convert as fast as it arrives waits in the socket rather than in
//! memory. A line cut by a chunk's end is completed by the next chunks.
//!
//! Lines whose series text the target's [`SeriesCache`] knows are read with the quick split
//! (the usual scrape of a target whose series did not change), as
//! [`super::convert::body_to_samples`] reads them; blank lines and comments are passed over,
//! but the valid `# TYPE`, `# HELP` and `# UNIT` lines are kept aside (a `# EOF` inside
//! Istio's concatenated 15020 body changes nothing for the samples after it). At a line the
//! quick split cannot take (an unknown or changed series, a line it declines), the chunk's
//! complete lines from there on go through the full parser after the kept metadata lines, so
//! they are read in the families the whole body gives them, continuing the same scrape of the
//! cache: the result is the one the full parse of the whole body gives. Owns the line splitting
//! across chunks; it must not parse or convert lines.

use meshtap_textformat::{quick_sample, Format, Parser};
use prost::bytes::Bytes;

use super::convert::{convert_lines, ScrapedSamples};
use super::fetch::BodySink;
use super::series_cache::SeriesCache;
use super::target::Target;
use super::text_key::TextKeys;

/// Metadata line prefixes the full parser needs from the lines before the ones it reads.
const METADATA: [&[u8]; 3] = [b"# TYPE ", b"# HELP ", b"# UNIT "];

/// What a scrape of `target` turned into, from the chunks of its body (see
/// [`convert_lines`] for the arguments).
pub fn chunks_to_samples(
    chunks: &[Bytes],
    content_type: Option<&str>,
    target: &Target,
    scrape_ms: i64,
    drop_filter_families: bool,
    cache: &mut SeriesCache,
) -> ScrapedSamples {
    let mut conversion = ChunkConversion::new(target, scrape_ms, drop_filter_families, cache);
    conversion.content_type(content_type);
    for chunk in chunks {
        conversion.chunk(chunk);
    }
    conversion.finish()
}

/// One scrape's body being converted through the target's cache (a scrape of the cache is
/// begun when it is made; the caller finishes it).
pub struct ChunkConversion<'a> {
    target: &'a Target,
    scrape_ms: i64,
    drop_filter_families: bool,
    cache: &'a mut SeriesCache,
    content_type: Option<String>,
    format: Format,
    /// A line cut by a chunk's end: its start.
    carry: Vec<u8>,
    /// The valid metadata lines seen so far, each with its `\n`.
    metadata: Vec<u8>,
    /// Some lines went through the full parser (the families are then reported).
    parsed_in_full: bool,
    keys: TextKeys,
    out: ScrapedSamples,
}

impl<'a> ChunkConversion<'a> {
    pub fn new(
        target: &'a Target,
        scrape_ms: i64,
        drop_filter_families: bool,
        cache: &'a mut SeriesCache,
    ) -> ChunkConversion<'a> {
        cache.begin();
        let mut out = ScrapedSamples::default();
        // Room for the target's series and its report series, so the samples are never moved.
        out.samples.reserve(cache.len() + 8);
        ChunkConversion {
            target,
            scrape_ms,
            drop_filter_families,
            cache,
            content_type: None,
            format: Format::from_content_type(None),
            carry: Vec::new(),
            metadata: Vec::new(),
            parsed_in_full: false,
            keys: TextKeys::default(),
            out,
        }
    }

    /// The samples of the whole body (after its last chunk).
    pub fn finish(mut self) -> ScrapedSamples {
        let mut last = std::mem::take(&mut self.carry);
        if !last.is_empty() {
            last.push(b'\n');
            self.lines(&last);
        }
        if self.parsed_in_full {
            // The families of every metadata line, the ones after the last full parse too.
            let metadata = std::mem::take(&mut self.metadata);
            self.full_parse(&metadata, b"");
        }
        self.out
    }

    /// Complete lines (each ending with `\n`): on the quick split while it takes them, then
    /// the rest through the full parser.
    fn lines(&mut self, mut lines: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', lines) {
            let line = &lines[..=end];
            if METADATA.iter().any(|prefix| line.starts_with(prefix)) {
                if !self.keep_metadata(line) {
                    self.out.bad_lines += 1;
                }
            } else if self.quick_line(line).is_none() {
                self.full_lines(lines);
                return;
            }
            lines = &lines[end + 1..];
        }
    }

    /// Lines the full parser reads, after the metadata lines seen before them; the metadata
    /// lines among them are kept for the lines after.
    fn full_lines(&mut self, lines: &[u8]) {
        let metadata = std::mem::take(&mut self.metadata);
        self.full_parse(&metadata, lines);
        self.metadata = metadata;
        self.parsed_in_full = true;
        for line in lines.split_inclusive(|&b| b == b'\n') {
            if METADATA.iter().any(|prefix| line.starts_with(prefix)) {
                // A bad one was counted by the parse above.
                self.keep_metadata(line);
            }
        }
    }

    fn full_parse(&mut self, metadata: &[u8], lines: &[u8]) {
        let mut text = Vec::with_capacity(metadata.len() + lines.len());
        text.extend_from_slice(metadata);
        text.extend_from_slice(lines);
        convert_lines(
            &text,
            self.content_type.as_deref(),
            self.target,
            self.scrape_ms,
            self.drop_filter_families,
            self.cache,
            &mut self.out,
        );
    }

    /// Keeps a metadata line for the full parser if it reads as one (a line that does not is
    /// never given to the parser again); false for such a bad line.
    fn keep_metadata(&mut self, line: &[u8]) -> bool {
        let mut parser = Parser::new(line, self.format);
        let read = parser.next_line().and_then(|bare| parser.read_line(bare));
        let valid = !matches!(read, Some(Err(_)));
        if valid {
            self.metadata.extend_from_slice(line);
        }
        valid
    }

    /// One line on the quick split: `None` when it needs the full parser.
    fn quick_line(&mut self, line: &[u8]) -> Option<()> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None | Some(b'#') => return Some(()),
            Some(_) => {}
        }
        let quick = quick_sample(line, self.format)?;
        let entry = self
            .cache
            .text(self.keys.key(quick.series_text))
            .filter(|entry| entry.quick && self.cache.is_current(entry.outcome))?;
        self.out.scraped += 1;
        self.out.add(
            self.cache,
            entry,
            self.drop_filter_families,
            quick.value,
            quick.timestamp_ms.unwrap_or(self.scrape_ms),
        );
        Some(())
    }
}

impl BodySink for ChunkConversion<'_> {
    fn content_type(&mut self, content_type: Option<&str>) {
        self.format = Format::from_content_type(content_type);
        self.content_type = content_type.map(str::to_owned);
    }

    fn chunk(&mut self, mut chunk: &[u8]) {
        if !self.carry.is_empty() {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                self.carry.extend_from_slice(chunk);
                return;
            };
            let mut line = std::mem::take(&mut self.carry);
            line.extend_from_slice(&chunk[..=end]);
            self.lines(&line);
            line.clear();
            self.carry = line;
            chunk = &chunk[end + 1..];
        }
        let complete = memchr::memrchr(b'\n', chunk).map_or(0, |end| end + 1);
        self.lines(&chunk[..complete]);
        self.carry.extend_from_slice(&chunk[complete..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::convert::body_to_samples;
    use crate::scrape::convert::tests::{target, text, BODY};

    /// The quick pass alone: `None` when it fell back to the full parse.
    fn quick_pass(
        cache: &mut SeriesCache,
        chunks: &[Bytes],
        scrape_ms: i64,
    ) -> Option<ScrapedSamples> {
        let t = target("jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020']}]}]");
        let mut conversion = ChunkConversion::new(&t, scrape_ms, false, cache);
        conversion.content_type(None);
        for chunk in chunks {
            conversion.chunk(chunk);
        }
        let quick = conversion.carry.is_empty() && !conversion.parsed_in_full;
        let out = conversion.finish();
        quick.then_some(out)
    }

    fn summary(out: &ScrapedSamples) -> (Vec<String>, u64, u64, u64) {
        let samples = out.samples.iter().map(text).collect();
        (samples, out.scraped, out.bad_lines, out.duplicates)
    }

    /// A cache that has seen `BODY` once (at 1000 ms) for `t`.
    fn known_cache(t: &Target) -> SeriesCache {
        let mut cache = SeriesCache::default();
        body_to_samples(BODY.as_bytes(), None, t, 1000, false, &mut cache);
        assert!(cache.finish(1000).is_empty());
        cache
    }

    /// The body cut at many places into three chunks gives, on a known target, the samples of
    /// the whole body without the full parse; a new line falls back to the full parse and
    /// still gives the whole body's result.
    #[test]
    fn chunks_give_the_samples_of_the_whole_body() {
        let t = target("jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020']}]}]");
        let known = || known_cache(&t);
        let mut cache = known();
        let expected = summary(&body_to_samples(
            BODY.as_bytes(),
            None,
            &t,
            2000,
            false,
            &mut cache,
        ));
        assert_eq!(expected.3, 1, "the body repeats a line");
        let bytes = Bytes::from_static(BODY.as_bytes());
        let changed = Bytes::from(BODY.replacen("} 7\n", "} 7\nnew_series_total 5\n", 1));
        for cut in (0..=bytes.len()).step_by(5) {
            let second = (cut + 11).min(bytes.len());
            let chunks = [
                bytes.slice(..cut),
                bytes.slice(cut..second),
                bytes.slice(second..),
            ];
            let mut cache = known();
            let out = quick_pass(&mut cache, &chunks, 2000).expect("every line is known");
            assert_eq!(summary(&out), expected, "cut at {cut}");
            assert!(
                cache.finish(2000).is_empty(),
                "cut at {cut}: nothing vanished"
            );

            let cut = cut.min(changed.len());
            let chunks = [changed.slice(..cut), changed.slice(cut..)];
            let out = chunks_to_samples(&chunks, None, &t, 3000, false, &mut cache);
            assert_eq!(out.samples.len(), expected.0.len() + 1, "cut at {cut}");
            assert_eq!(out.scraped, expected.1 + 1);
            assert_eq!(cache.added(), 1);
            assert!(cache.finish(3000).is_empty());
        }
    }

    /// A body whose series changed in the middle of a histogram (a new bucket, then a new
    /// family) falls back to the full parser there, after the metadata lines the quick pass
    /// saw, and gives what the full parse of the whole body gives, wherever it is cut.
    #[test]
    fn a_fallback_mid_body_gives_the_full_parse() {
        let t = target("jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020']}]}]");
        let known = || known_cache(&t);
        let changed = BODY
            .replace(
                "le=\"1.0\"} 2\n",
                "le=\"1.0\"} 2\nenvoy_cluster_upstream_rq_time_bucket{le=\"2.50\"} 2\n",
            )
            .replace("envoy_server_live{} 1\n", "# TYPE late gauge\nlate 4\n");
        let mut whole_cache = known();
        let whole = body_to_samples(changed.as_bytes(), None, &t, 2000, false, &mut whole_cache);
        let expected = summary(&whole);
        assert!(
            expected.0.iter().any(|s| s.contains("le=2.5,")),
            "the new bucket's le is read as a histogram's: {expected:?}"
        );
        let whole_stale = whole_cache.finish(2000).len();
        let bytes = Bytes::from(changed);
        for cut in (0..=bytes.len()).step_by(3) {
            let mut cache = known();
            let chunks = [bytes.slice(..cut), bytes.slice(cut..)];
            let out = chunks_to_samples(&chunks, None, &t, 2000, false, &mut cache);
            assert_eq!(summary(&out), expected, "cut at {cut}");
            let mut families: Vec<&str> = out.families.iter().map(|(n, _)| n.as_str()).collect();
            families.sort_unstable();
            assert!(families.contains(&"late"), "cut at {cut}: {families:?}");
            assert_eq!(cache.added(), whole_cache.added(), "cut at {cut}");
            assert_eq!(cache.finish(2000).len(), whole_stale, "cut at {cut}");
        }
    }

    /// Istio's 15020 body is several expositions, each possibly ended by `# EOF`: the pass
    /// reads on past it, as the full parse does.
    #[test]
    fn a_body_with_eof_inside_stays_on_the_quick_pass() {
        let t = target("jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020']}]}]");
        let body = format!("up 1\n# EOF\n{BODY}# EOF\n");
        let mut cache = SeriesCache::default();
        body_to_samples(body.as_bytes(), None, &t, 1000, false, &mut cache);
        assert!(cache.finish(1000).is_empty());
        let expected = summary(&body_to_samples(
            body.as_bytes(),
            None,
            &t,
            2000,
            false,
            &mut cache,
        ));
        assert!(cache.finish(2000).is_empty());
        let out = quick_pass(&mut cache, &[Bytes::from(body)], 3000).expect("stays on the pass");
        let (samples, scraped, bad, duplicates) = summary(&out);
        let at_3000: Vec<String> = expected
            .0
            .iter()
            .map(|s| s.replace("@2000", "@3000"))
            .collect();
        assert_eq!(
            (samples, scraped, bad, duplicates),
            (at_3000, expected.1, expected.2, expected.3)
        );
        assert_eq!(expected.1, 11, "up and the body's ten samples");
    }
}
