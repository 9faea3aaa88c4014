//! Who this process is, and what it may read and write under `/opt/ml`.
//!
//! SageMaker (and the SageMaker Python SDK's local mode) mounts `/opt/ml` from directories owned
//! by root or by whoever runs the job, some with mode 0700. A process that cannot read one must
//! say so, naming the path, its owner and mode, and the process's own ids: a permission problem
//! must never look like a missing channel or model. `train` runs as root in the image (as AWS's
//! algorithm images do) and gives what it writes to the owner of the directory it writes into, so
//! the person who owns a mounted directory can read and delete the outputs; `serve` gives up
//! root once its model is loaded ([`drop_privileges`]).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The real user and group ids of this process.
#[allow(unsafe_code)]
pub fn process_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take no arguments, cannot fail and touch no memory of ours.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Whether this process runs as root (effective uid 0).
#[allow(unsafe_code)]
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() == 0 }
}

/// Like `Path::exists`, but a path that cannot be inspected is an error, not "absent".
pub fn present(path: &Path) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// One line explaining why `path` could not be opened (`os` is what the system said): the first
/// path on the way to it that this process may not enter or read, with its owner and mode, and
/// the process's ids. Root is refused only by something other than the mode bits, so for root
/// the line names those causes instead.
pub fn explain_denied(path: &Path, os: &std::io::Error) -> String {
    let (uid, gid) = process_ids();
    if is_root() {
        return format!(
            "permission denied on {} ({os}) although this process runs as root: not the mode bits, \
             but a read-only mount, a security label (SELinux: mount with :z), a root-squashed \
             network file system or dropped capabilities",
            path.display()
        );
    }
    let blocker = blocking_ancestor(path);
    let what = match std::fs::metadata(&blocker) {
        Ok(m) => format!(
            "{} {} is owned by uid {} gid {} with mode {:04o}",
            if m.is_dir() { "directory" } else { "file" },
            blocker.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(_) => format!("{} cannot be inspected", blocker.display()),
    };
    format!(
        "permission denied on {} ({os}): {what}, and this process runs as uid {uid} gid {gid}. \
         Run the container as root (the image's default user) or make the path readable \
         (and, for outputs, writable) by that user",
        path.display()
    )
}

/// The first ancestor of `path` (or `path` itself) whose child cannot be reached or that cannot
/// be inspected: a directory we may not search stops `metadata` of everything below it.
fn blocking_ancestor(path: &Path) -> PathBuf {
    let mut reached = PathBuf::new();
    for part in path.components() {
        let next = reached.join(part);
        match std::fs::metadata(&next) {
            Ok(_) => reached = next,
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    && !reached.as_os_str().is_empty() =>
            {
                return reached
            }
            Err(_) => return next,
        }
    }
    path.to_path_buf()
}

/// Gives `path` to the owner of its parent directory when this process is root, so that whoever
/// owns a mounted output directory can read, replace and delete what `train` wrote into it.
/// Best effort: a failure (a read-only or foreign file system) leaves the file as it is.
pub fn adopt_parent_owner(path: &Path) {
    if !is_root() {
        return;
    }
    let Some(parent) = path.parent() else { return };
    if let Ok(m) = std::fs::metadata(parent) {
        if m.uid() != 0 || m.gid() != 0 {
            let _ = std::os::unix::fs::lchown(path, Some(m.uid()), Some(m.gid()));
        }
    }
}

/// `create_dir_all`, with every directory it creates given to its parent's owner
/// ([`adopt_parent_owner`]).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !present(at)? {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        adopt_parent_owner(created);
    }
    Ok(())
}

/// Switches the whole process (every thread) to `uid`:`gid` with no supplementary groups, for
/// good: the serving process needs root only to read a model it may have been handed as root.
#[allow(unsafe_code)]
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: setgroups reads no memory when the count is 0; setgid and setuid take plain ids.
    // glibc applies each call to every thread of the process.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
    }
    // Root must be gone for good, not just for now.
    // SAFETY: as above.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("root could be regained after setuid"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_tells_absent_from_present() {
        let dir = tempfile::tempdir().unwrap();
        assert!(present(dir.path()).unwrap());
        assert!(!present(&dir.path().join("nothing")).unwrap());
    }

    #[test]
    fn explanation_names_the_path_owner_mode_and_process() {
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        let os = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let text = explain_denied(&locked.join("data/train"), &os);
        assert!(text.starts_with("permission denied on "), "{text}");
        if is_root() {
            assert!(text.contains("not the mode bits"), "{text}");
        } else {
            // Not root: the directory on the way is named with its owner and mode.
            let (uid, gid) = process_ids();
            assert!(text.contains(&format!("uid {uid} gid {gid}")), "{text}");
        }
    }
}
