//! A scrape body converted from the chunks it arrived in, without joining them, when every line
//! is one the target's [`SeriesCache`] reads with the quick split: the usual scrape of a target
//! whose series did not change. Joining a body copies it once more (about as much work as the
//! kernel's copy off the socket), so the join is left to the scrapes that need the full parser.
//!
//! The pass takes blank lines, comments (the `# TYPE` and `# HELP` lines only matter to texts
//! the cache does not know; a `# EOF` inside Istio's concatenated 15020 body changes nothing
//! for the samples after it) and lines whose series text the cache knows, read as
//! [`super::convert::body_to_samples`] reads them. Anything else (an unknown or changed series,
//! a line the quick split declines) ends the pass: the cache's scrape is begun again and the
//! joined body goes through `body_to_samples`, so the result is the same either way. Owns the line splitting across chunks; it must not parse or convert lines.

use meshtap_textformat::{quick_sample, Format};
use prost::bytes::Bytes;

use super::convert::{body_to_samples, ScrapedSamples};
use super::series_cache::{text_key, SeriesCache};
use super::target::Target;

/// What a scrape of `target` turned into (see [`body_to_samples`] for the arguments).
pub fn chunks_to_samples(
    chunks: &[Bytes],
    content_type: Option<&str>,
    target: &Target,
    scrape_ms: i64,
    drop_filter_families: bool,
    cache: &mut SeriesCache,
) -> ScrapedSamples {
    let mut out = ScrapedSamples::default();
    // Room for the target's series and its report series, so the samples are never moved.
    out.samples.reserve(cache.len() + 8);
    let mut pass = QuickPass {
        format: Format::from_content_type(content_type),
        scrape_ms,
        drop_filter_families,
        cache,
        out,
    };
    if pass.run(chunks).is_some() {
        return pass.out;
    }
    let body = chunks.concat();
    body_to_samples(
        &body,
        content_type,
        target,
        scrape_ms,
        drop_filter_families,
        cache,
    )
}

struct QuickPass<'c> {
    format: Format,
    scrape_ms: i64,
    drop_filter_families: bool,
    cache: &'c mut SeriesCache,
    out: ScrapedSamples,
}

impl QuickPass<'_> {
    /// Every line of the chunks, in order; `None` at the first line the pass cannot take.
    fn run(&mut self, chunks: &[Bytes]) -> Option<()> {
        self.cache.begin();
        // A line cut by a chunk's end: its start, completed by the next chunks.
        let mut carry: Vec<u8> = Vec::new();
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            if !carry.is_empty() {
                let Some(end) = memchr::memchr(b'\n', rest) else {
                    carry.extend_from_slice(rest);
                    continue;
                };
                carry.extend_from_slice(&rest[..end]);
                self.line(&carry)?;
                carry.clear();
                rest = &rest[end + 1..];
            }
            while let Some(end) = memchr::memchr(b'\n', rest) {
                self.line(&rest[..end])?;
                rest = &rest[end + 1..];
            }
            carry.extend_from_slice(rest);
        }
        if !carry.is_empty() {
            self.line(&carry)?;
        }
        Some(())
    }

    fn line(&mut self, line: &[u8]) -> Option<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None | Some(b'#') => return Some(()),
            Some(_) => {}
        }
        let quick = quick_sample(line, self.format)?;
        let entry = self
            .cache
            .text(text_key(quick.series_text))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::convert::tests::{target, text, BODY};

    /// The quick pass alone: `None` when it would fall back to the full parse.
    fn quick_pass(
        cache: &mut SeriesCache,
        chunks: &[Bytes],
        scrape_ms: i64,
    ) -> Option<ScrapedSamples> {
        let mut pass = QuickPass {
            format: Format::PrometheusText,
            scrape_ms,
            drop_filter_families: false,
            cache,
            out: ScrapedSamples::default(),
        };
        pass.run(chunks)?;
        Some(pass.out)
    }

    fn summary(out: &ScrapedSamples) -> (Vec<String>, u64, u64, u64) {
        let samples = out.samples.iter().map(text).collect();
        (samples, out.scraped, out.bad_lines, out.duplicates)
    }

    /// The body cut at many places into three chunks gives, on a known target, the samples of
    /// the whole body without the full parse; a new line falls back to the full parse and
    /// still gives the whole body's result.
    #[test]
    fn chunks_give_the_samples_of_the_whole_body() {
        let t = target("jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020']}]}]");
        let known = || {
            let mut cache = SeriesCache::default();
            body_to_samples(BODY.as_bytes(), None, &t, 1000, false, &mut cache);
            assert!(cache.finish(1000).is_empty());
            cache
        };
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
