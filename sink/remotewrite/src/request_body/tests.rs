//! Tests of the request body: copies of repeated labels and pieces decode to their bytes.

use super::*;

/// The body that `write` makes.
fn compressed(write: impl FnOnce(&mut CompressedBody<'_>)) -> Vec<u8> {
    let mut snappy = SnappyBody::default();
    let mut index = RepeatIndex::default();
    snappy.start();
    write(&mut CompressedBody {
        snappy: &mut snappy,
        index: &mut index,
    });
    snappy.finish().to_vec()
}

fn decompressed(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(body).unwrap()
}

#[test]
fn a_repeated_label_is_a_copy_of_its_last_occurrence() {
    let a = b"label a: a fairly long encoded field".as_slice();
    let b = b"label b".as_slice();
    let c = b"label c, in b's place every other record".as_slice();
    let d = b"label d, in every third record".as_slice();
    let mut expected = Vec::new();
    let compressed = compressed(|body| {
        for round in 0..60u8 {
            let mut labels = vec![(8, a), if round % 2 == 0 { (16, b) } else { (24, c) }];
            if round % 3 == 0 {
                labels.push((32, d));
            }
            body.literal().push(round);
            expected.push(round);
            body.begin_labels();
            for (key, field) in labels {
                body.label(key, field);
                expected.extend_from_slice(field);
            }
            body.end_labels();
        }
    });
    assert_eq!(decompressed(&compressed), expected);
    // Per round: a 1-byte literal with its tag, and two or three copies (3 bytes each).
    assert!(compressed.len() < a.len() + b.len() + c.len() + d.len() + 60 * 11 + 10);
}

/// Records of random lengths that keep, drop, add and change labels against the record
/// before them (the previous record's labels are tracked in place), interned labels given
/// in stretches and other labels between them, decode to their bytes.
#[test]
fn records_that_grow_shrink_and_change_decode_to_their_labels() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut interner = crate::encoded_series::LabelInterner::default();
    let pool: Vec<_> = (0..40)
        .map(|k| interner.label(&format!("label_{k:02}"), &"v".repeat(1 + k % 9)))
        .collect();
    let others: [&[u8]; 2] = [b"external one", b"external two, longer"];
    let mut expected = Vec::new();
    let compressed = compressed(|body| {
        let mut record: Vec<usize> = (0..12).collect();
        for _ in 0..400 {
            match rng.random_range(0..5) {
                0 if record.len() > 1 => {
                    record.remove(rng.random_range(0..record.len()));
                }
                1 => record.insert(rng.random_range(0..=record.len()), rng.random_range(0..42)),
                2 => {
                    let i = rng.random_range(0..record.len());
                    record[i] = rng.random_range(0..42);
                }
                _ => {}
            }
            body.literal().push(b'#');
            expected.push(b'#');
            body.begin_labels();
            let mut stretch: Vec<&EncodedLabel> = Vec::new();
            for &k in &record {
                if k < 40 {
                    stretch.push(&pool[k]);
                    expected.extend_from_slice(pool[k].field());
                    continue;
                }
                body.labels(&stretch);
                stretch.clear();
                body.label(k - 39, others[k - 40]);
                expected.extend_from_slice(others[k - 40]);
            }
            body.labels(&stretch);
            body.end_labels();
        }
    });
    assert_eq!(decompressed(&compressed), expected);
}

#[test]
fn a_third_key_of_a_set_takes_the_least_recent_way() {
    let mut index = RepeatIndex::default();
    let key = 8usize;
    let mut same_set = (1..)
        .map(|i| key + i * 8)
        .filter(|k| RepeatIndex::set(*k) == RepeatIndex::set(key));
    let (second, third) = (same_set.next().unwrap(), same_set.next().unwrap());
    assert_eq!(index.replace(key, 10), None);
    assert_eq!(index.replace(key, 20), Some(10));
    assert_eq!(index.replace(second, 30), None);
    assert_eq!(index.replace(key, 40), Some(20), "two ways hold both");
    assert_eq!(index.replace(third, 50), None, "takes the way of `second`");
    assert_eq!(index.replace(second, 60), None, "`second` lost its way");
    assert_eq!(index.replace(third, 70), Some(50));
    assert_eq!(index.replace(key, 80), None, "`key`, the older, made room");
    index.clear();
    assert_eq!(index.replace(third, 90), None);
}

#[test]
fn a_piece_equal_to_the_last_of_its_kind_is_a_copy() {
    let mut expected = Vec::new();
    let compressed = compressed(|body| {
        for (kind, piece) in [
            (0, b"header".as_slice()),
            (1, b"time 1"),
            (0, b"header"),
            (1, b"time 2"),
            (1, b"time 2"),
            (2, b"time 2"),
            (0, b"header"),
        ] {
            body.piece(kind, &Piece::from_slice(piece));
            expected.extend_from_slice(piece);
        }
        assert_eq!(body.snappy.position(), expected.len());
    });
    assert_eq!(decompressed(&compressed), expected);
    // Literals: "header", "time 1", "time 2" twice (kind 2 has its own last piece).
    assert!(
        compressed.len() < 1 + 4 * 7 + 3 * 3 + 3,
        "{}",
        compressed.len()
    );
}
