//! The positions file: every file being tailed, from its first read on, with its path (as it
//! was opened), identity (device and inode), first-line fingerprint, the byte offset up to
//! which its lines were acknowledged by every Loki endpoint, and the offset read so far
//! (possibly not acknowledged yet); and the files already read and released, to tell which
//! rotated files were read. Written atomically (temp file, fsync, rename, directory
//! fsync) so a crash leaves the old or the new version, never a torn one.
//!
//! Owns the file format and its durability; what an offset means is the tailer's business.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A file's identity, stable across renames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(metadata: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// One tailed file's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: String,
    #[serde(flatten)]
    pub id: FileId,
    /// Acknowledged: every line before it was accepted by every endpoint. A restart resumes here.
    pub offset: u64,
    /// Read: lines up to here were read and handed to the endpoints (absent in files written
    /// before it existed). What lies between `offset` and `read` is sent again after a restart.
    #[serde(default)]
    pub read: u64,
    /// Fingerprint of the file's first line: recognises the file after the kubelet rotated and
    /// compressed it (a new inode) while the sink was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_line: Option<u64>,
    /// Read to its end and released (rotated or deleted): kept only to tell which rotated
    /// siblings of its log were read already, never opened again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PositionsDocument {
    version: u32,
    files: Vec<Position>,
}

const VERSION: u32 = 1;

/// Why the positions file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    #[error("positions file {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("positions file {path}: not a meshtap positions document: {error}")]
    Format {
        path: String,
        error: serde_json::Error,
    },
}

/// The positions file on disk.
pub struct PositionsFile {
    path: PathBuf,
}

impl PositionsFile {
    pub fn new(path: &Path) -> PositionsFile {
        PositionsFile {
            path: path.to_owned(),
        }
    }

    fn io(&self, error: std::io::Error) -> PositionsError {
        PositionsError::Io {
            path: self.path.display().to_string(),
            error,
        }
    }

    /// The saved positions; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<Position>, PositionsError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let document: PositionsDocument =
            serde_json::from_slice(&text).map_err(|error| PositionsError::Format {
                path: self.path.display().to_string(),
                error,
            })?;
        Ok(document.files)
    }

    /// Replaces the file with `positions`, atomically and durably.
    pub fn save(&self, positions: &[Position]) -> Result<(), PositionsError> {
        let document = PositionsDocument {
            version: VERSION,
            files: positions.to_vec(),
        };
        let body = serde_json::to_vec_pretty(&document).expect("positions serialize");
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let mut temp_name = self.path.file_name().unwrap_or_default().to_owned();
        temp_name.push(".tmp");
        let temp = dir.join(temp_name);
        let mut file = std::fs::File::create(&temp).map_err(|e| self.io(e))?;
        file.write_all(&body).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        drop(file);
        std::fs::rename(&temp, &self.path).map_err(|e| self.io(e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = std::env::temp_dir().join(format!("meshtap-positions-{}", std::process::id()));
        let file = PositionsFile::new(&dir.join("sub/positions.json"));
        assert!(file.load().unwrap().is_empty());
        let one = Position {
            path: "/var/log/pods/a_b_c/istio-proxy/0.log".into(),
            id: FileId { dev: 1, inode: 2 },
            offset: 300,
            read: 450,
            first_line: Some(7),
            released: false,
        };
        file.save(std::slice::from_ref(&one)).unwrap();
        assert_eq!(file.load().unwrap(), vec![one.clone()]);
        let two = Position {
            offset: 600,
            first_line: None,
            released: true,
            ..one
        };
        file.save(std::slice::from_ref(&two)).unwrap();
        assert_eq!(file.load().unwrap(), vec![two]);
        // A document written before read offsets existed still loads.
        std::fs::write(
            dir.join("sub/positions.json"),
            br#"{"version":1,"files":[{"path":"/p","dev":1,"inode":2,"offset":5}]}"#,
        )
        .unwrap();
        assert_eq!(file.load().unwrap()[0].read, 0);
        assert!(!dir.join("sub/positions.json.tmp").exists());
        std::fs::write(dir.join("sub/positions.json"), b"{oops").unwrap();
        assert!(matches!(file.load(), Err(PositionsError::Format { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
