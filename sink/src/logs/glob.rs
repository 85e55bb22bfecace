//! Expansion of the `log_files.include` pattern into the files it names: `*` (any run of
//! characters) and `?` (one character) within a path segment, matched against directory
//! listings segment by segment.
//!
//! Owns pattern matching over the file system only; it never opens files for reading.

use std::path::{Path, PathBuf};

/// Whether `name` matches `pattern` (`*` and `?` never cross a `/`: patterns are per segment).
pub fn segment_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The regular files (symlinks followed) matching an absolute `pattern`, sorted. Unreadable
/// directories are skipped: pods come and go while the tree is walked.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::from("/")];
    for segment in pattern.split('/').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        if segment.contains(['*', '?']) {
            for dir in &current {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if segment_matches(segment.as_bytes(), name.as_encoded_bytes()) {
                        next.push(dir.join(name));
                    }
                }
            }
        } else {
            next.extend(current.iter().map(|dir| dir.join(segment)));
        }
        current = next;
    }
    current.retain(|path| Path::new(path).is_file());
    current.sort();
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_within_a_segment() {
        assert!(segment_matches(b"*.log", b"0.log"));
        assert!(segment_matches(b"*.log", b".log"));
        assert!(!segment_matches(b"*.log", b"0.log.20240101-000000"));
        assert!(segment_matches(b"?.log", b"1.log"));
        assert!(!segment_matches(b"?.log", b"10.log"));
        assert!(segment_matches(b"a*b*c", b"aXXbYYbc"));
        assert!(!segment_matches(b"a*b*c", b"aXXbYY"));
        assert!(segment_matches(b"*", b"anything"));
    }

    #[test]
    fn expands_over_directories() {
        let root = std::env::temp_dir().join(format!("meshtap-glob-{}", std::process::id()));
        for dir in ["ns_a_1/istio-proxy", "ns_b_2/istio-proxy", "ns_b_2/app"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "ns_a_1/istio-proxy/0.log",
            "ns_b_2/istio-proxy/1.log",
            "ns_b_2/istio-proxy/0.log.20240101-000000",
            "ns_b_2/app/0.log",
        ] {
            std::fs::write(root.join(file), b"").unwrap();
        }
        let found = expand(&format!("{}/*/istio-proxy/*.log", root.display()));
        assert_eq!(
            found,
            vec![
                root.join("ns_a_1/istio-proxy/0.log"),
                root.join("ns_b_2/istio-proxy/1.log")
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
