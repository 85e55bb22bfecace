//! Property tests of the request encoder: random batches (reported and scraped series mixed,
//! repeated and clashing labels, stale markers, -0.0, negative timestamps) decode with prost to
//! exactly what was queued, and the compressed body is the raw one. The checks are in
//! `encode_checks`, shared with the fuzz target `fuzz/fuzz_targets/encode.rs`.

mod encode_checks;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_batch_decodes_to_what_was_queued(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        encode_checks::check_encoding(&data);
    }

    #[test]
    fn long_runs_of_one_series_stay_exact(head in prop::collection::vec(any::<u8>(), 8), n in 1usize..200) {
        let data: Vec<u8> = head.iter().copied().cycle().take(8 * n).collect();
        encode_checks::check_encoding(&data);
    }
}
