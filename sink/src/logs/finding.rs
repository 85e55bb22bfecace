//! Which files the tailer should read: the glob's (or discovery's) matches not tailed yet,
//! the line format of each (Envoy's or ztunnel's), and the rotated siblings of a log that were
//! never read. Part of [`super::LogTailer`]; it must not read lines or save positions.

use meshtap_logformat::LineFormat;

use super::*;

impl LogTailer {
    /// Opens files matching the glob that are not tailed yet, from their start. A new file
    /// under the name of a log the tailer knows means a rotation: the siblings of that log it
    /// never read (rotated while it waited for Loki) are opened first.
    pub(super) fn discover(&mut self) {
        self.released
            .retain(|r| Path::new(&r.path).parent().is_some_and(Path::exists));
        for path in self.candidate_paths() {
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            let id = FileId::of(&metadata);
            if self.files.iter().any(|t| t.file.id == id)
                || self.ignored.contains(&path.display().to_string())
            {
                continue;
            }
            self.open_unread_siblings(&path);
            if let Some(t) = self.open(&path, 0) {
                tracing::debug!(path = %t.file.path, "tailing");
                self.files.push(t);
            }
        }
    }

    /// The files to tail: those of the discovered targets, else of `include`.
    pub(super) fn candidate_paths(&self) -> Vec<PathBuf> {
        let Some(discovery) = &self.discovery else {
            return glob::expand(&self.config.include);
        };
        let targets = discovery.targets.borrow().clone().unwrap_or_default();
        let mut paths: Vec<PathBuf> = targets
            .iter()
            .flat_map(|t| glob::expand(&t.pattern))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The first discovered target naming `path` (a rotated file: its live name), with
    /// discovery.
    pub(super) fn discovered_target(&self, path: &str) -> Option<LogTarget> {
        let targets = self.discovery.as_ref()?.targets.borrow().clone()?;
        let live = live_name(Path::new(path));
        let live = live.to_str()?;
        let target = targets.iter().find(|t| pattern_matches(&t.pattern, live))?;
        Some(target.clone())
    }

    /// How the file's lines are parsed: ztunnel's records for a ztunnel pod's files (its
    /// discovered target says so, or, with none, `ztunnel_files` names the file), else Envoy's.
    pub(super) fn line_format(&self, path: &str, target: Option<&LogTarget>) -> LineFormat {
        if !self.config.parse_access_logs {
            return LineFormat::Unparsed;
        }
        let ztunnel = match target {
            Some(target) => target.ztunnel,
            None => live_name(Path::new(path))
                .to_str()
                .is_some_and(|live| pattern_matches(&self.config.ztunnel_files, live)),
        };
        if ztunnel {
            LineFormat::Ztunnel
        } else {
            LineFormat::Envoy
        }
    }

    /// Opens the rotated siblings of the log `live` that are neither tailed nor released, if
    /// the tailer knows that log; forgets released files no longer needed to tell that.
    pub(super) fn open_unread_siblings(&mut self, live: &Path) {
        let (tailed_paths, tailed): (Vec<String>, Vec<FileMark>) = self
            .files
            .iter_mut()
            .filter(|t| live_name(Path::new(&t.file.path)) == live)
            .map(|t| {
                let known = FileMark {
                    id: t.file.id,
                    first_line: t.file.first_line(),
                };
                (t.file.path.clone(), known)
            })
            .unzip();
        let (released, others): (Vec<Position>, Vec<Position>) = std::mem::take(&mut self.released)
            .into_iter()
            .partition(|r| live_name(Path::new(&r.path)) == live);
        self.released = others;
        if tailed.is_empty() && released.is_empty() {
            return;
        }
        let recognised: Vec<FileMark> = tailed
            .iter()
            .copied()
            .chain(released.iter().map(file_mark))
            .collect();
        let survey = survey(live, &recognised);
        for ((path, known), found) in tailed_paths.iter().zip(&tailed).zip(&survey.found) {
            if found.is_none() && known.first_line.is_some() {
                tracing::warn!(%path, "the kubelet deleted a rotated file before it was read to its end (it is still read, through its open handle); files rotated after it and deleted unread are lost");
            }
        }
        // A released file gone from disk is no longer needed once another known file remains.
        let found = &survey.found[tailed.len()..];
        let keep_gone = tailed.is_empty() && found.iter().all(Option::is_none);
        self.released.extend(
            released
                .into_iter()
                .zip(found)
                .filter(|(_, at)| keep_gone || at.is_some())
                .map(|(r, _)| r),
        );
        for sibling in survey.unread {
            if let Some(mut t) = self.open(&sibling.path, 0) {
                tracing::info!(path = %t.file.path, "reading a file rotated while the tailer waited");
                t.release_at_end = true;
                self.files.push(t);
            }
        }
    }
}
