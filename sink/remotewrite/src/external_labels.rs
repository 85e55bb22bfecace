//! An endpoint's external labels as the encoder writes them: each encoded once per request,
//! and where they go among a scraped series' sorted labels.
//!
//! Finding that place means comparing label names, which are behind two pointers per label
//! (cache misses on every sample). Consecutive series of a target mostly share the labels
//! around those places, so the places of the previous series are kept with the identities of
//! their neighbouring labels, and reused when the same interned labels sit there: a few pointer
//! comparisons instead of a binary search per external label. Owns that placement; it must not
//! write bytes.

use crate::encoded_series::EncodedLabel;

/// Where an external label went in the last series placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Spliced in at `at`, between the labels at `at - 1` and `at` (their addresses; 0 past
    /// either end).
    Spliced {
        at: usize,
        left: usize,
        right: usize,
    },
    /// The series has its own label of that name, at `at` (its address): not added.
    Own { at: usize, label: usize },
}

/// The external labels of one request (see the module docs).
#[derive(Default)]
pub struct ExternalLabels {
    fields: Vec<Vec<u8>>,
    places: Vec<Place>,
    /// (index among the series' labels, external label) of those spliced in, in order.
    splices: Vec<(usize, usize)>,
    /// Their encoded length together.
    spliced_len: usize,
}

fn address(labels: &[&EncodedLabel], i: usize) -> usize {
    labels
        .get(i)
        .map_or(0, |l| *l as *const EncodedLabel as usize)
}

impl ExternalLabels {
    /// Takes a request's external labels (sorted by name, unique), each encoded with `encode`.
    pub fn load(
        &mut self,
        external: &[(String, String)],
        mut encode: impl FnMut(&mut Vec<u8>, &str, &str),
    ) {
        self.fields.resize_with(external.len(), Vec::new);
        for (field, (n, v)) in self.fields.iter_mut().zip(external) {
            field.clear();
            encode(field, n, v);
        }
        self.places.clear();
    }

    /// The key (for `RequestBody::label`: a small number, which no label's address can be)
    /// and encoded field of external label `j`.
    pub fn get(&self, j: usize) -> (usize, &[u8]) {
        (j + 1, &self.fields[j])
    }

    /// Places the external labels among `labels` (a series' sorted labels); then
    /// [`Self::splices`] and [`Self::spliced_len`] describe them.
    pub fn place(&mut self, labels: &[&EncodedLabel], external: &[(String, String)]) {
        let still = self.places.len() == external.len()
            && self.places.iter().all(|place| match *place {
                Place::Spliced { at, left, right } => {
                    at <= labels.len()
                        && at.checked_sub(1).map_or(0, |i| address(labels, i)) == left
                        && address(labels, at) == right
                }
                Place::Own { at, label } => address(labels, at) == label,
            });
        if still {
            return;
        }
        self.places.clear();
        self.splices.clear();
        self.spliced_len = 0;
        for (j, (name, _)) in external.iter().enumerate() {
            let at = labels.partition_point(|l| l.name() < name.as_str());
            if labels.get(at).is_some_and(|l| l.name() == name) {
                self.places.push(Place::Own {
                    at,
                    label: address(labels, at),
                });
                continue;
            }
            self.places.push(Place::Spliced {
                at,
                left: at.checked_sub(1).map_or(0, |i| address(labels, i)),
                right: address(labels, at),
            });
            self.splices.push((at, j));
            self.spliced_len += self.fields[j].len();
        }
    }

    /// (index among the series' labels, external label) of the labels the last placed series
    /// lacks, in label order.
    pub fn splices(&self) -> &[(usize, usize)] {
        &self.splices
    }

    /// Encoded length of those labels together.
    pub fn spliced_len(&self) -> usize {
        self.spliced_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoded_series::LabelInterner;

    /// The places found by searching, for every series in a mix where neighbours change, an
    /// external name is sometimes the series' own, and labels come and go at the ends.
    #[test]
    fn reused_places_are_the_places_a_search_finds() {
        let mut interner = LabelInterner::default();
        let external: Vec<(String, String)> = ["a", "cluster", "m", "zz"]
            .into_iter()
            .map(|n| (n.to_owned(), "x".to_owned()))
            .collect();
        let mut reused = ExternalLabels::default();
        reused.load(&external, |f, n, v| {
            f.extend_from_slice(format!("{n}={v}").as_bytes())
        });
        let shapes: [&[(&str, &str)]; 6] = [
            &[("__name__", "m1"), ("b", "1"), ("pod", "p")],
            &[("__name__", "m1"), ("b", "2"), ("pod", "p")],
            &[
                ("__name__", "m1"),
                ("b", "2"),
                ("cluster", "own"),
                ("pod", "p"),
            ],
            &[("__name__", "m1"), ("b", "2"), ("pod", "p"), ("zzz", "z")],
            &[("a", "own"), ("b", "2"), ("pod", "p")],
            &[("__name__", "m1"), ("b", "1"), ("pod", "p")],
        ];
        for round in 0..3 {
            for (i, shape) in shapes.iter().enumerate() {
                let series = interner.series(shape.iter().copied());
                let labels: Vec<_> = series.labels().collect();
                reused.place(&labels, &external);
                let mut searched = ExternalLabels::default();
                searched.load(&external, |f, n, v| {
                    f.extend_from_slice(format!("{n}={v}").as_bytes())
                });
                searched.place(&labels, &external);
                assert_eq!(
                    reused.splices(),
                    searched.splices(),
                    "round {round}, series {i}"
                );
                assert_eq!(reused.spliced_len(), searched.spliced_len());
            }
        }
    }
}
