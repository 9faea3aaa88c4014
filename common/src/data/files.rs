//! Listing and opening a channel's data files.

use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Buffer size for reading data files.
const READ_BUFFER: usize = 1 << 20;

/// Every data file below `dir`, recursively, in sorted path order. Names starting with `.` or `_`
/// (`.DS_Store`, `_SUCCESS`, `.ipynb_checkpoints/`) are skipped with a warning.
pub fn data_files(dir: &Path, channel: &str) -> Result<Vec<PathBuf>> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Config(format!(
                "channel '{channel}': {} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Config(format!(
                "Missing required channel: {channel} (no directory {})",
                dir.display()
            )))
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    let out = listed(dir)?;
    if out.is_empty() {
        return Err(Error::Config(format!(
            "Channel '{channel}' is empty: no data files in {} (files starting with '.' or '_' are skipped)",
            dir.display()
        )));
    }
    Ok(out)
}

/// The data files below the directory `dir`, recursively, in sorted path order (none: empty).
pub fn listed(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out, &mut Vec::new())?;
    out.sort();
    Ok(out)
}

/// `ancestors` holds the real paths of the directories being walked: a link back to one of them
/// (a loop) is skipped with a warning instead of being followed 40 levels deep.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, ancestors: &mut Vec<PathBuf>) -> Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if ancestors.contains(&real) {
        tracing::warn!(path = %dir.display(), "skipping a symbolic link back to a directory above it (a loop)");
        return Ok(());
    }
    ancestors.push(real);
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            tracing::warn!(path = %path.display(), "skipping hidden or '_'-prefixed file");
            continue;
        }
        // Follows symbolic links, as SageMaker's FastFile mounts and local tests may use them.
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            walk(&path, out, ancestors)?;
        } else if meta.is_file() {
            out.push(path);
        }
    }
    ancestors.pop();
    Ok(())
}

/// Whether a file starts with gzip's magic bytes.
pub fn is_gzip(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

/// Opens a data file for buffered reading, decompressing gzip (by magic bytes) on the fly, past
/// a UTF-8 byte-order mark (Windows tools such as PowerShell write one; it is no part of the
/// data, whatever the format). Returns the reader and the file's name relative to `dir` for
/// messages.
pub fn open(dir: &Path, path: &Path) -> Result<(Box<dyn BufRead + Send>, String)> {
    let display = path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let magic = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    let mut reader: Box<dyn BufRead + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
        let gz = MultiGzDecoder::new(reader);
        Box::new(BufReader::with_capacity(READ_BUFFER, gz))
    } else {
        Box::new(reader)
    };
    let start = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    if start.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok((reader, display))
}
