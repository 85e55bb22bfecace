//! The identity the kubelet encodes in a container-log path,
//! `<pods dir>/<namespace>_<pod>_<pod uid>/<container>/<restart count>.log`, and the rotated names
//! `<restart count>.log.<YYYYMMDD-hhmmss>` (optionally `.gz`). Only the last three components are
//! read, so any pods directory works; this module never touches the filesystem.

use thiserror::Error;

/// The parts of a pod log path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLogPath<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub pod_uid: &'a str,
    pub container: &'a str,
    pub restart_count: u32,
    /// `Some("20240628-064016")` for a rotated file, `None` for the live `<n>.log`.
    pub rotated_at: Option<&'a str>,
    /// The rotated file was gzip-compressed by the kubelet (`.gz`): it is read decompressed.
    pub compressed: bool,
}

/// Why a path is not a kubelet pod log path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PodLogPathError {
    #[error("pod log path needs `<namespace>_<pod>_<uid>/<container>/<n>.log`: {0}")]
    TooShort(String),
    #[error("pod directory is not `<namespace>_<pod>_<uid>`: {0}")]
    PodDirectory(String),
    #[error("log file name is not `<n>.log` or `<n>.log.<YYYYMMDD-hhmmss>[.gz]`: {0}")]
    FileName(String),
}

impl<'a> PodLogPath<'a> {
    /// Parses a path such as `/var/log/pods/bookinfo_reviews-v1-7d8f_3f2a.../istio-proxy/0.log`.
    pub fn parse(path: &'a str) -> Result<Self, PodLogPathError> {
        let mut components = path.rsplit('/').filter(|part| !part.is_empty());
        let (Some(file_name), Some(container), Some(pod_directory)) =
            (components.next(), components.next(), components.next())
        else {
            return Err(PodLogPathError::TooShort(path.to_owned()));
        };

        // Namespaces and pod names are DNS labels/subdomains and UIDs are UUIDs: none holds `_`.
        let mut pod_parts = pod_directory.split('_');
        let (Some(namespace), Some(pod), Some(pod_uid), None) = (
            pod_parts.next(),
            pod_parts.next(),
            pod_parts.next(),
            pod_parts.next(),
        ) else {
            return Err(PodLogPathError::PodDirectory(pod_directory.to_owned()));
        };
        if namespace.is_empty() || pod.is_empty() || pod_uid.is_empty() {
            return Err(PodLogPathError::PodDirectory(pod_directory.to_owned()));
        }

        let bad_name = || PodLogPathError::FileName(file_name.to_owned());
        let (restart, after_log) = file_name.split_once(".log").ok_or_else(bad_name)?;
        let restart_count: u32 =
            if !restart.is_empty() && restart.bytes().all(|b| b.is_ascii_digit()) {
                restart.parse().map_err(|_| bad_name())?
            } else {
                return Err(bad_name());
            };
        let (rotated_at, compressed) = match after_log {
            "" => (None, false),
            rotated => {
                let rotated = rotated.strip_prefix('.').ok_or_else(bad_name)?;
                let (stamp, compressed) = match rotated.strip_suffix(".gz") {
                    Some(stamp) => (stamp, true),
                    None => (rotated, false),
                };
                if !is_rotation_stamp(stamp) {
                    return Err(bad_name());
                }
                (Some(stamp), compressed)
            }
        };
        Ok(PodLogPath {
            namespace,
            pod,
            pod_uid,
            container,
            restart_count,
            rotated_at,
            compressed,
        })
    }
}

/// `YYYYMMDD-hhmmss`, the kubelet's rotation suffix.
fn is_rotation_stamp(stamp: &str) -> bool {
    let bytes = stamp.as_bytes();
    bytes.len() == 15
        && bytes[8] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 8 || byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_DIR: &str =
        "/var/log/pods/bookinfo_reviews-v1-545db77b95-2ps7q_6e4f3f5e-2b1c-4c7a-9d0e-8f1a2b3c4d5e";

    #[test]
    fn parses_live_log_path() {
        let path = format!("{POD_DIR}/istio-proxy/0.log");
        let parsed = PodLogPath::parse(&path).unwrap();
        assert_eq!(parsed.namespace, "bookinfo");
        assert_eq!(parsed.pod, "reviews-v1-545db77b95-2ps7q");
        assert_eq!(parsed.pod_uid, "6e4f3f5e-2b1c-4c7a-9d0e-8f1a2b3c4d5e");
        assert_eq!(parsed.container, "istio-proxy");
        assert_eq!(parsed.restart_count, 0);
        assert_eq!(parsed.rotated_at, None);
        assert!(!parsed.compressed);
    }

    #[test]
    fn parses_rotated_and_compressed_names() {
        let path = format!("{POD_DIR}/istio-proxy/12.log.20240628-064016");
        let parsed = PodLogPath::parse(&path).unwrap();
        assert_eq!(parsed.restart_count, 12);
        assert_eq!(parsed.rotated_at, Some("20240628-064016"));
        assert!(!parsed.compressed);
        let path = format!("{POD_DIR}/istio-proxy/3.log.20240628-064016.gz");
        let parsed = PodLogPath::parse(&path).unwrap();
        assert_eq!(parsed.rotated_at, Some("20240628-064016"));
        assert!(parsed.compressed);
    }

    #[test]
    fn rejects_other_paths() {
        for (path, is_expected) in [
            (
                "0.log",
                (|e| matches!(e, PodLogPathError::TooShort(_))) as fn(&PodLogPathError) -> bool,
            ),
            ("/var/log/pods/bookinfo_reviews/istio-proxy/0.log", |e| {
                matches!(e, PodLogPathError::PodDirectory(_))
            }),
            ("/var/log/pods/a_b_c_d/istio-proxy/0.log", |e| {
                matches!(e, PodLogPathError::PodDirectory(_))
            }),
            ("/var/log/pods/a_b_c/istio-proxy/x.log", |e| {
                matches!(e, PodLogPathError::FileName(_))
            }),
            (
                "/var/log/pods/a_b_c/istio-proxy/0.log.20240628-064016.tmp",
                |e| matches!(e, PodLogPathError::FileName(_)),
            ),
            ("/var/log/pods/a_b_c/istio-proxy/0.logx", |e| {
                matches!(e, PodLogPathError::FileName(_))
            }),
            ("/var/log/pods/a_b_c/istio-proxy/0.txt", |e| {
                matches!(e, PodLogPathError::FileName(_))
            }),
        ] {
            let error = PodLogPath::parse(path).unwrap_err();
            assert!(is_expected(&error), "{path}: {error:?}");
        }
    }
}
