//! Kubernetes CRI container-log files: one line's structure (`line`), joining partial chunks
//! (`joiner`) and the pod/container identity encoded in the file path (`path`). Pure parsing: this
//! module never opens files or follows rotations.

mod joiner;
mod line;
mod path;

pub use joiner::{JoinedLine, PartialJoiner, DEFAULT_MAX_JOINED_BYTES};
pub use line::{parse_cri_line, CriError, CriLine, CriStream};
pub use path::{PodLogPath, PodLogPathError};
