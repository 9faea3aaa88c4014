//! The model directory: a manifest describing the model plus its payload files.
//!
//! Writing is atomic at the level of the whole model: payload files get names unique to the run
//! and are each written to a temporary name, synced and renamed; `manifest.json` is written the
//! same way last, and only it makes the model visible. A stop at any moment leaves either the
//! previous complete model or the new one, never a mix. Paths in the manifest are relative.
//! SageMaker tars the directory itself; [`open_model_dir`] also accepts a `model.tar.gz`.

use crate::access;
use crate::data::categories::{Categories, Encoding};
use crate::error::{Error, Result};
use crate::kinds::ModelKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the manifest in the model directory.
pub const MANIFEST: &str = "manifest.json";
/// The artifact format version written (by every kind's training but tabular).
pub const FORMAT_VERSION: u32 = 1;
/// The newest version this build reads: 2 is a tabular model whose trees are kept in XGBoost's
/// format and whose manifest may name categories and class names.
pub const READS_UP_TO: u32 = 2;

/// One payload file of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadFile {
    /// What the file holds (e.g. a member name).
    pub name: String,
    /// Path relative to the model directory.
    pub file: String,
    /// How the file is encoded.
    pub format: PayloadFormat,
    /// Ensemble weight, when the payload is an ensemble member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

impl PayloadFile {
    /// The file's bytes, from the model directory `dir`.
    pub fn read(&self, dir: &Path) -> Result<Vec<u8>> {
        read_model_file(dir, &self.file)
    }
}

/// How a payload file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadFormat {
    /// XGBoost's own UBJSON model, kept for XGBoost tooling; serving does not read it.
    XgboostUbj,
    /// XGBoost trees compiled for prediction ([`crate::models::trees::TreeModel`]).
    CompiledTrees,
    /// The standardised logistic regression, bincode.
    BincodeLogistic,
    /// A generic tabular candidate, bincode.
    BincodeTabular,
    /// A model file written by XGBoost itself (served models trained elsewhere).
    XgboostModel,
}

impl PayloadFormat {
    /// The name written into the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::XgboostUbj => "xgboost-ubj",
            PayloadFormat::CompiledTrees => "compiled-trees",
            PayloadFormat::BincodeLogistic => "bincode-logistic",
            PayloadFormat::BincodeTabular => "bincode-tabular",
            PayloadFormat::XgboostModel => "xgboost-model",
        }
    }
}

/// A payload file as it is about to be written: its manifest entry and its bytes.
pub type Payload = (PayloadFile, Vec<u8>);

/// The self-description of a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Artifact format version; readers reject newer versions.
    pub format_version: u32,
    /// Which model kind this is.
    pub model_kind: ModelKind,
    /// Feature names in the order the model expects them.
    pub feature_names: Vec<String>,
    /// Decision threshold (probability `>` threshold means class 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// How ensemble weights were chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighting: Option<String>,
    /// The payload files.
    pub payloads: Vec<PayloadFile>,
    /// Evaluation results (the same document as `evaluation.json`).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// The decoded hyperparameters the model was trained with.
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, String>,
    /// Versions of the libraries that produced the model.
    #[serde(default)]
    pub library_versions: BTreeMap<String, String>,
    /// Rows per split used in training.
    #[serde(default)]
    pub rows: BTreeMap<String, usize>,
    /// The categorical features' categories in code order, by feature name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, Vec<String>>,
    /// The class names in class order, when the labels were text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
    /// Each numeric feature's smallest and largest value in the train split, by name (what the
    /// `out_of_range` output key compares with).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub training_ranges: BTreeMap<String, [f32; 2]>,
    /// What a model saved on SIGTERM before its fit was complete (`save_model_on_termination`)
    /// holds, e.g. `random_forest 75 of 200 trees, gradient_boosting not fitted`; absent for a
    /// complete model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

impl Manifest {
    /// A manifest of `model_kind` taking `feature_names`, with nothing else in it yet.
    pub fn new(model_kind: ModelKind, feature_names: Vec<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            model_kind,
            feature_names,
            threshold: None,
            weighting: None,
            payloads: Vec::new(),
            metrics: serde_json::Value::Null,
            hyperparameters: BTreeMap::new(),
            library_versions: BTreeMap::new(),
            rows: BTreeMap::new(),
            categories: BTreeMap::new(),
            class_names: Vec::new(),
            training_ranges: BTreeMap::new(),
            partial: None,
        }
    }

    /// Records the categorical features and class names of the training data.
    pub fn set_encoding(&mut self, encoding: &Encoding) {
        self.categories = self
            .feature_names
            .iter()
            .enumerate()
            .filter_map(|(k, name)| {
                encoding
                    .feature(k)
                    .map(|c| (name.clone(), c.names().to_vec()))
            })
            .collect();
        self.class_names = encoding
            .classes
            .as_ref()
            .map_or_else(Vec::new, |c| c.names().to_vec());
    }

    /// The categorical features and class names recorded; a category list naming a feature the
    /// model does not have, or holding a name twice, is an error.
    pub fn encoding(&self) -> Result<Encoding> {
        let unique = |names: &[String], what: &str| -> Result<Categories> {
            let distinct: std::collections::HashSet<&String> = names.iter().collect();
            if distinct.len() != names.len()
                || names.len() > crate::data::categories::MAX_CATEGORIES
            {
                return Err(Error::Artifact(format!(
                    "{MANIFEST}: the {what} repeat a name or are too many"
                )));
            }
            Ok(Categories::new(names.to_vec()))
        };
        let mut features = vec![None; self.feature_names.len()];
        for (name, names) in &self.categories {
            let k = self
                .feature_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| {
                    Error::Artifact(format!(
                        "{MANIFEST}: categories are given for '{name}', which is not a feature"
                    ))
                })?;
            features[k] = Some(unique(names, &format!("categories of '{name}'"))?);
        }
        let classes = (!self.class_names.is_empty())
            .then(|| unique(&self.class_names, "class names"))
            .transpose()?;
        Ok(Encoding { features, classes })
    }

    /// Reads and checks `manifest.json` in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let bytes = read_model_file(dir, MANIFEST)?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Artifact(format!("{MANIFEST} is malformed: {e}")))?;
        if m.format_version > READS_UP_TO {
            return Err(Error::Artifact(format!(
                "{MANIFEST} has format version {}, this build reads up to {READS_UP_TO}",
                m.format_version
            )));
        }
        for p in &m.payloads {
            if Path::new(&p.file).is_absolute() || p.file.contains("..") {
                return Err(Error::Artifact(format!(
                    "payload path '{}' must be relative and inside the model directory",
                    p.file
                )));
            }
        }
        Ok(m)
    }

    /// Reads one payload file's bytes.
    pub fn read_payload(&self, dir: &Path, payload: &PayloadFile) -> Result<Vec<u8>> {
        payload.read(dir)
    }
}

/// Largest model file, and largest `model.tar.gz` content, this build reads (1 GiB): a model
/// file linked to `/dev/zero` or an archive that unpacks without end cannot exhaust memory or
/// the scratch disk.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Reads `name` in the model directory: a regular file (not a link, device or pipe) of at most
/// [`MAX_MODEL_BYTES`].
fn read_model_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::io(&path, e),
        _ => Error::Artifact(format!("cannot read {name}: {e}")),
    })?;
    if !meta.file_type().is_file() {
        return Err(Error::Artifact(format!(
            "{name} is not a regular file (links, devices and pipes are not read)"
        )));
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::Artifact(format!(
            "{name} is {} bytes, over the {MAX_MODEL_BYTES}-byte limit for a model file",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_MODEL_BYTES).read_to_end(&mut bytes))
        .map_err(|e| Error::Artifact(format!("cannot read {name}: {e}")))?;
    Ok(bytes)
}

/// Writes files into `path` through a temporary name, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_name(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        access::adopt_parent_owner(path);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes a model: `payloads` (name in the manifest, file stem, format, weight, bytes), then the
/// manifest. Files of the model this one replaces are removed afterwards, and so are payload
/// files an interrupted earlier run left behind (recognised by the names this function gives:
/// [`is_payload_name`]); nothing else is touched. When a write fails, the files this run wrote
/// are removed again.
pub fn save(dir: &Path, mut manifest: Manifest, payloads: Vec<Payload>) -> Result<()> {
    access::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let previous = Manifest::load(dir).ok();
    let run = format!(
        "r{:x}{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
        std::process::id()
    );
    manifest.payloads.clear();
    let written = (|| {
        for (i, (mut meta, bytes)) in payloads.into_iter().enumerate() {
            let (stem, ext) = meta
                .file
                .rsplit_once('.')
                .unwrap_or((meta.file.as_str(), "bin"));
            meta.file = format!("{stem}-{run}-{i}.{ext}");
            manifest.payloads.push(meta.clone());
            write_atomic(&dir.join(&meta.file), &bytes)?;
        }
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Artifact(e.to_string()))?;
        write_atomic(&dir.join(MANIFEST), &json)
    })();
    if let Err(e) = written {
        for p in &manifest.payloads {
            let _ = std::fs::remove_file(dir.join(&p.file));
        }
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let keep = |name: &str| manifest.payloads.iter().any(|p| p.file == name);
    let replaced = previous.map(|p| p.payloads).unwrap_or_default();
    let leftovers = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| is_payload_name(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for name in replaced.into_iter().map(|p| p.file).chain(leftovers) {
        if !keep(&name) {
            let _ = std::fs::remove_file(dir.join(&name));
        }
    }
    Ok(())
}

/// Whether `name` is one [`save`] gives a payload (`<stem>-r<run>-<index>.<ext>`: `r` then at
/// least 12 hexadecimal digits, `ext` one of `ubj`, `trees`, `bin`) or its temporary file
/// (`... .tmp-<pid>`), including the manifest's temporary file.
pub fn is_payload_name(name: &str) -> bool {
    let name = match name.rsplit_once(".tmp-") {
        Some((base, pid)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
            if base == MANIFEST {
                return true;
            }
            base
        }
        _ => name,
    };
    let Some((rest, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let Some((rest, index)) = rest.rsplit_once('-') else {
        return false;
    };
    let Some((stem, run)) = rest.rsplit_once('-') else {
        return false;
    };
    let Some(run) = run.strip_prefix('r') else {
        return false;
    };
    ["ubj", "trees", "bin"].contains(&ext)
        && !stem.is_empty()
        && !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
        && run.len() >= 12
        && run.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The directory holding the model: `dir` itself, or, when `dir` holds no `manifest.json` but a
/// `model.tar.gz` (a model registered uncompressed), that archive unpacked into `scratch`.
pub fn open_model_dir(dir: &Path, scratch: &Path) -> Result<PathBuf> {
    let manifest = dir.join(MANIFEST);
    if access::present(&manifest).map_err(|e| Error::io(&manifest, e))? {
        return Ok(dir.to_path_buf());
    }
    let archive = dir.join("model.tar.gz");
    if !access::present(&archive).map_err(|e| Error::io(&archive, e))? {
        return Ok(dir.to_path_buf());
    }
    let file = std::fs::File::open(&archive).map_err(|e| Error::io(&archive, e))?;
    // Nothing left from an earlier start may pass for part of this archive.
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).map_err(|e| Error::io(scratch, e))?;
    unpack(file, scratch)?;
    Ok(scratch.to_path_buf())
}

/// Most entries a `model.tar.gz` may hold (a model is a handful of files).
const MAX_ARCHIVE_ENTRIES: usize = 10_000;

/// Unpacks a gzipped tar of regular files and directories into `into`: links, devices and
/// paths leaving `into` are refused, and at most [`MAX_MODEL_BYTES`] are written. A write error
/// (a full disk) is reported as such, with the file it happened on.
fn unpack(archive: impl std::io::Read, into: &Path) -> Result<()> {
    let broken = |e: std::io::Error| {
        let what = crate::error::one_line(&e.to_string(), 200);
        Error::Artifact(format!("model.tar.gz cannot be unpacked: {what}"))
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut budget = MAX_MODEL_BYTES;
    for (count, entry) in tar.entries().map_err(broken)?.enumerate() {
        if count >= MAX_ARCHIVE_ENTRIES {
            return Err(Error::Artifact(format!(
                "model.tar.gz holds more than {MAX_ARCHIVE_ENTRIES} entries"
            )));
        }
        let mut entry = entry.map_err(broken)?;
        let name = entry.path().map_err(broken)?.into_owned();
        let shown = crate::error::one_line(&name.display().to_string(), 200);
        if name.is_absolute()
            || name.components().any(|c| {
                !matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            })
        {
            return Err(Error::Artifact(format!(
                "model.tar.gz: '{shown}' is not a relative path inside the archive"
            )));
        }
        let target = into.join(&name);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if entry.size() > budget {
                    return Err(Error::Artifact(format!(
                        "model.tar.gz unpacks to more than {MAX_MODEL_BYTES} bytes (at '{shown}')"
                    )));
                }
                budget -= entry.size();
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let mut out = std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
                // The entry reader stops at the size the header gave, checked above.
                std::io::copy(&mut entry, &mut out).map_err(|e| {
                    let what = crate::error::one_line(&e.to_string(), 200);
                    Error::Artifact(format!(
                        "model.tar.gz: cannot write '{shown}' to {}: {what}",
                        into.display()
                    ))
                })?;
            }
            // A pax global header carries no file (per-file pax headers are read by `tar`).
            tar::EntryType::XGlobalHeader => {}
            other => {
                return Err(Error::Artifact(format!(
                    "model.tar.gz: '{shown}' is a {other:?} entry; only regular files and directories are unpacked"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn manifest() -> Manifest {
        manifest_of(&["a".into()])
    }

    /// A tabular model's manifest taking `names`.
    pub(crate) fn manifest_of(names: &[String]) -> Manifest {
        Manifest::new(ModelKind::Tabular, names.to_vec())
    }

    fn payload(bytes: &[u8]) -> (PayloadFile, Vec<u8>) {
        (
            PayloadFile {
                name: "m".into(),
                file: "m.bin".into(),
                format: PayloadFormat::BincodeTabular,
                weight: None,
            },
            bytes.to_vec(),
        )
    }

    #[test]
    fn save_replaces_previous_model_and_keeps_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        save(dir.path(), manifest(), vec![payload(b"one")]).unwrap();
        let first = Manifest::load(dir.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        save(dir.path(), manifest(), vec![payload(b"two")]).unwrap();
        let second = Manifest::load(dir.path()).unwrap();
        assert_eq!(
            second
                .read_payload(dir.path(), &second.payloads[0])
                .unwrap(),
            b"two"
        );
        assert!(!dir.path().join(&first.payloads[0].file).exists());
        assert!(dir.path().join("notes.txt").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn leftovers_of_an_interrupted_save_are_removed_and_foreign_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "random_forest-r19ad2c4f1e2a3b4-0.ubj",
            "gradient_boosting-r19ad2c4f1e2a3b4-3.trees.tmp-4242",
            "manifest.json.tmp-17",
            "notes-2024-01.json",
            "my-model-1.bin",
            "export-20240101120000-1.bin",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        save(dir.path(), manifest(), vec![payload(b"y")]).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let m = Manifest::load(dir.path()).unwrap();
        let mut want = vec![
            "export-20240101120000-1.bin".to_owned(),
            "manifest.json".into(),
            "my-model-1.bin".into(),
            "notes-2024-01.json".into(),
            m.payloads[0].file.clone(),
        ];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn tarball_is_unpacked_and_absolute_paths_rejected() {
        let src = tempfile::tempdir().unwrap();
        save(src.path(), manifest(), vec![payload(b"x")]).unwrap();
        let packed = tempfile::tempdir().unwrap();
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(packed.path().join("model.tar.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        let mut t = tar::Builder::new(gz);
        t.append_dir_all(".", src.path()).unwrap();
        t.into_inner().unwrap().finish().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let dir = open_model_dir(packed.path(), scratch.path()).unwrap();
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(m.read_payload(&dir, &m.payloads[0]).unwrap(), b"x");

        let mut bad = manifest();
        bad.payloads.push(PayloadFile {
            name: "m".into(),
            file: "/etc/passwd".into(),
            format: PayloadFormat::BincodeTabular,
            weight: None,
        });
        std::fs::write(src.path().join(MANIFEST), serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(Manifest::load(src.path()).is_err());
    }

    /// A gzipped tar holding one entry of `kind` named `name` (a link to `/etc/passwd`).
    fn archive_with(kind: tar::EntryType, name: &str) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o644);
        if kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        // Names are written raw so that `..` reaches the reader unchecked.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        t.append(&h, std::io::empty()).unwrap();
        t.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn archives_with_links_or_escaping_paths_and_linked_payloads_are_refused() {
        for (kind, name, why) in [
            (
                tar::EntryType::Symlink,
                "manifest.json",
                "only regular files",
            ),
            (
                tar::EntryType::Regular,
                "../escape.json",
                "not a relative path",
            ),
        ] {
            let scratch = tempfile::tempdir().unwrap();
            let e = unpack(&archive_with(kind, name)[..], scratch.path()).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), manifest(), vec![payload(b"x")]).unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        let file = dir.path().join(&m.payloads[0].file);
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        let e = m.read_payload(dir.path(), &m.payloads[0]).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
