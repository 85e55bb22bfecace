//! Finding tailed files again after the kubelet rotated them: the rotated siblings of a log
//! (`<n>.log.<stamp>` and `<n>.log.<stamp>.gz`, oldest first), which of them are files the
//! tailer knows (being tailed, or read and released; by first-line fingerprint, or by identity
//! for a file that has none), and which it never read.
//!
//! Owns the reading of directory listings and file heads for that; opening, reading and
//! accounting belong to the tailer.

use std::path::{Path, PathBuf};

use meshtap_logformat::cri::PodLogPath;

use super::file::{first_line_hash, head_of};
use super::positions::FileId;

/// A rotated file of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    pub path: PathBuf,
    pub id: FileId,
}

/// How the tailer recognises a file it knows: its identity and, once read, its fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMark {
    pub id: FileId,
    pub first_line: Option<u64>,
}

/// The rotated siblings of a log, seen against the files the tailer knows of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Survey {
    /// Where each known file is, in the order given (`None`: not among the siblings).
    pub found: Vec<Option<Sibling>>,
    /// Siblings never read, oldest first: those newer than the oldest known file found, or,
    /// when a known file with a fingerprint is gone, all that are not known (the kubelet
    /// deletes the oldest rotated files first, so all that remain are newer). Siblings older
    /// than every known file (rotated before the tailer first saw the log) are not included.
    pub unread: Vec<Sibling>,
}

/// Surveys the rotated siblings of the log named `live` (its `<n>.log`) against `known`, the
/// files of that log the tailer knows that are not under the live name. A known file is
/// recognised by its fingerprint when it has one (inodes are reused, and compression makes a
/// new file), else by its identity.
pub fn survey(live: &Path, known: &[FileMark]) -> Survey {
    let siblings = rotated_siblings(live);
    let prints: Vec<Option<u64>> = if known.iter().any(|k| k.first_line.is_some()) {
        siblings.iter().map(|s| fingerprint(&s.path)).collect()
    } else {
        vec![None; siblings.len()]
    };
    let is = |i: usize, k: &FileMark| match k.first_line {
        Some(print) => prints[i] == Some(print),
        None => siblings[i].id == k.id,
    };
    let found: Vec<Option<usize>> = known
        .iter()
        .map(|k| (0..siblings.len()).find(|&i| is(i, k)))
        .collect();
    let gone = known
        .iter()
        .zip(&found)
        .any(|(k, at)| k.first_line.is_some() && at.is_none());
    let from = match found.iter().flatten().min() {
        _ if gone => 0,
        Some(&oldest) => oldest + 1,
        None => siblings.len(),
    };
    let unread = (from..siblings.len())
        .filter(|&i| !found.contains(&Some(i)))
        .map(|i| siblings[i].clone())
        .collect();
    Survey {
        found: found
            .into_iter()
            .map(|at| at.map(|i| siblings[i].clone()))
            .collect(),
        unread,
    }
}

/// The first-line fingerprint of the file at `path` (decompressed when a `.gz`), if it has a
/// whole first line.
pub fn fingerprint(path: &Path) -> Option<u64> {
    head_of(path).ok().and_then(|head| first_line_hash(&head))
}

/// Whether the file at `path` still starts with the first line fingerprinted `first_line`
/// (an unknown fingerprint counts as the same): an inode freed by a rotation can be reused by
/// the next file at the same path.
pub fn same_first_line(path: &Path, first_line: Option<u64>) -> bool {
    let Some(saved) = first_line else {
        return true;
    };
    fingerprint(path).is_none_or(|now| now == saved)
}

/// Whether `path` is a rotated name (`<n>.log.<stamp>` or `<n>.log.<stamp>.gz`).
pub fn is_rotated_name(path: &str) -> bool {
    PodLogPath::parse(path).is_ok_and(|p| p.rotated_at.is_some())
}

/// The order in which files of the same log are read: rotated ones by their stamp, the live
/// one last (`(live name, is live, stamp)`).
pub fn reading_order(path: &Path) -> (PathBuf, bool, String) {
    let stamp = path
        .to_str()
        .and_then(|text| PodLogPath::parse(text).ok())
        .and_then(|parsed| parsed.rotated_at.map(str::to_owned));
    (live_name(path), stamp.is_none(), stamp.unwrap_or_default())
}

/// The live name of a log (`<dir>/<n>.log`) from any of its names.
pub fn live_name(path: &Path) -> PathBuf {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return path.to_owned();
    };
    match name.find(".log.") {
        Some(at) => path.with_file_name(&name[..at + ".log".len()]),
        None => path.to_owned(),
    }
}

/// The rotated files of the log at `path` (`<name>.<stamp>` and `<name>.<stamp>.gz` in its
/// directory), oldest first, with their identities.
fn rotated_siblings(path: &Path) -> Vec<Sibling> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut siblings: Vec<(String, bool, Sibling)> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let text = path.to_str()?.to_owned();
            entry.file_name().to_str()?.strip_prefix(&prefix)?;
            let parsed = PodLogPath::parse(&text).ok()?;
            let stamp = parsed.rotated_at?.to_owned();
            let metadata = entry.metadata().ok().filter(|m| m.is_file())?;
            let id = FileId::of(&metadata);
            Some((stamp, parsed.compressed, Sibling { path, id }))
        })
        .collect();
    // While the kubelet compresses a file, `<stamp>` and `<stamp>.gz` both exist: the plain
    // one is complete, the other one may not be yet.
    siblings.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    siblings.dedup_by(|later, kept| later.0 == kept.0);
    siblings
        .into_iter()
        .map(|(_, _, sibling)| sibling)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_a_log_leads_to_its_live_name_and_reading_order() {
        let live = Path::new("/var/log/pods/a_b_c/istio-proxy/0.log");
        for name in ["0.log", "0.log.20240628-064100", "0.log.20240628-064100.gz"] {
            assert_eq!(live_name(&live.with_file_name(name)), live, "{name}");
        }
        let mut paths = [
            live.to_owned(),
            live.with_file_name("0.log.20240628-064200"),
            live.with_file_name("0.log.20240628-064100.gz"),
        ];
        paths.sort_by_key(|p| reading_order(p));
        assert_eq!(
            paths,
            [
                live.with_file_name("0.log.20240628-064100.gz"),
                live.with_file_name("0.log.20240628-064200"),
                live.to_owned(),
            ]
        );
    }

    #[test]
    fn siblings_never_read_are_those_newer_than_the_oldest_known_one_or_all_when_one_is_gone() {
        let dir = std::env::temp_dir().join(format!(
            "meshtap-rotation-{}/ns_pod_uid/istio-proxy",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let live = dir.join("0.log");
        let names = ["063000", "064100", "064200", "064300"];
        let files: Vec<PathBuf> = names
            .iter()
            .map(|n| dir.join(format!("0.log.20240628-{n}")))
            .collect();
        for (file, name) in files.iter().zip(names) {
            std::fs::write(file, format!("{name}\n")).unwrap();
        }
        std::fs::write(&live, "live\n").unwrap();
        let sibling = |p: &Path| Sibling {
            path: p.to_owned(),
            id: FileId::of(&std::fs::metadata(p).unwrap()),
        };
        let by_print = |p: &Path| FileMark {
            id: FileId { dev: 0, inode: 0 },
            first_line: fingerprint(p),
        };
        // Known: the second (by fingerprint) and the fourth (by identity only). The first is
        // older than anything known: not read.
        let fourth = FileMark {
            id: sibling(&files[3]).id,
            first_line: None,
        };
        assert_eq!(
            survey(&live, &[fourth, by_print(&files[1])]),
            Survey {
                found: vec![Some(sibling(&files[3])), Some(sibling(&files[1]))],
                unread: vec![sibling(&files[2])],
            }
        );
        // A known file with a fingerprint is gone: every sibling not known is newer.
        assert_eq!(
            survey(&live, &[by_print(&live), by_print(&files[2])]),
            Survey {
                found: vec![None, Some(sibling(&files[2]))],
                unread: vec![sibling(&files[0]), sibling(&files[1]), sibling(&files[3])],
            }
        );
        // Nothing recognisable: nothing can be told newer.
        let unknown = FileMark {
            id: FileId { dev: 0, inode: 0 },
            first_line: None,
        };
        assert_eq!(
            survey(&live, &[unknown]),
            Survey {
                found: vec![None],
                unread: vec![],
            }
        );
        std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
    }
}
