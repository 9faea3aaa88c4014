//! XGBoost 1.x model files that XGBoost 3 no longer reads: the legacy binary format (what
//! `save_model` wrote for a file name not ending in `.json`, and the built-in algorithm's
//! `xgboost-model` up to version 1.x), and Python pickles of a `Booster` (the built-in's older
//! artifacts), whose `handle` holds either such a binary model or a JSON/UBJSON snapshot
//! (`{"Config": ..., "Model": ...}`, XGBoost 1.0 and later). Read here without Python or the old
//! library: the pickle's opcodes are walked only to find the bytes, and the binary layout is
//! XGBoost 1.x's (little-endian):
//!
//! `"binf"` (optional) | learner parameters (136 bytes: base_score f32, num_feature u32,
//! num_class i32, contain_extra_attrs i32, ...) | objective and booster names (u64 length +
//! bytes each) | gbtree parameters (160 bytes: num_trees i32, ...) | per tree: tree parameters
//! (148 bytes: num_roots, num_nodes, ...), nodes (20 bytes: parent, left, right, split index
//! with the default direction in the top bit, split condition or leaf value), node statistics
//! (16 bytes each, skipped) | each tree's output group (i32 per tree). What is read becomes
//! the same typed model XGBoost's JSON is read into, compiled by the one path all take.

use super::trees::{IntOrBool, JsonTree, Link, XgboostJson};
use crate::error::{Error, Result};

/// Whether `bytes` may be a legacy binary model (with its `binf` header, or without, as XGBoost
/// before 1.x wrote it) or a pickle: anything but JSON and UBJSON, which start with `{`.
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.first() != Some(&b'{')
}

/// What a pickled `Booster` holds: the model bytes and the tree limit the built-in algorithm
/// predicted with (`best_ntree_limit`, set by early stopping).
pub struct Pickled {
    /// The `handle` bytes.
    pub model: Vec<u8>,
    /// Trees per output group to use (0: all).
    pub best_ntree_limit: usize,
}

/// Reads a legacy binary model or a pickled `Booster` (holding a binary model, or a JSON or
/// UBJSON snapshot): the model, and the trees per output group the built-in algorithm predicted
/// with (a pickle's `best_ntree_limit`; 0: all).
pub fn read(bytes: &[u8]) -> Result<(XgboostJson, usize)> {
    let (model, limit) = if bytes.first() == Some(&0x80) {
        let p = unpickle(bytes).map_err(|e| Error::Artifact(format!("pickle: {e}")))?;
        (p.model, p.best_ntree_limit)
    } else {
        (bytes.to_vec(), 0)
    };
    let model = if model.first() == Some(&b'{') {
        snapshot_model(&model)?
    } else {
        binary(&model).map_err(|e| Error::Artifact(format!("XGBoost 1.x binary model: {e}")))?
    };
    Ok((model, limit))
}

/// The `handle` bytes and `best_ntree_limit` of a pickled `Booster`.
pub fn unpickle(bytes: &[u8]) -> std::result::Result<Pickled, String> {
    let mut r = Cursor { b: bytes, at: 0 };
    let mut key: Option<String> = None;
    let mut model: Option<Vec<u8>> = None;
    let mut latin1: Option<String> = None;
    let mut limit = 0usize;
    loop {
        let op = r.u8()?;
        let mut text = None;
        let mut data = None;
        let mut int = None;
        match op {
            b'.' => break,
            0x80 => {
                r.take(1)?;
            }
            0x95 => {
                r.take(8)?;
            }
            0x8c => {
                let n = r.u8()? as usize;
                text = Some(r.text(n)?);
            }
            b'X' => {
                let n = r.u32()? as usize;
                text = Some(r.text(n)?);
            }
            0x8d => {
                let n = r.u64()?;
                text = Some(r.text(n)?);
            }
            b'U' => {
                let n = r.u8()? as usize;
                text = Some(r.text(n)?);
            }
            b'T' => {
                let n = r.u32()? as usize;
                text = Some(r.text(n)?);
            }
            b'C' => {
                let n = r.u8()? as usize;
                data = Some(r.take(n)?.to_vec());
            }
            b'B' => {
                let n = r.u32()? as usize;
                data = Some(r.take(n)?.to_vec());
            }
            0x8e | 0x96 => {
                let n = r.u64()?;
                data = Some(r.take(n)?.to_vec());
            }
            b'K' => int = Some(r.u8()? as usize),
            b'M' => int = Some(u16::from_le_bytes(r.array()?) as usize),
            b'J' => int = Some(i32::from_le_bytes(r.array()?).max(0) as usize),
            0x8a => {
                let n = r.u8()? as usize;
                r.take(n)?;
            }
            b'G' => {
                r.take(8)?;
            }
            b'q' | b'h' => {
                r.take(1)?;
            }
            b'r' | b'j' => {
                r.take(4)?;
            }
            b'c' => {
                r.line()?;
                r.line()?;
            }
            0x94 | 0x93 | b')' | b'}' | b']' | b'(' | 0x85 | 0x86 | 0x87 | b't' | b'R' | 0x81
            | b'b' | b's' | b'u' | b'a' | b'e' | b'N' | 0x88 | 0x89 | b'0' | b'l' | b'd' => {}
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
        if let Some(t) = text {
            if key.as_deref() == Some("handle") && model.is_none() {
                // Protocol 2 pickles a bytearray as its latin-1 text, then the codec name.
                if t == "latin-1" || t == "latin1" {
                    if let Some(l) = latin1.take() {
                        model = Some(l.chars().map(|c| c as u8).collect());
                        key = None;
                    }
                } else if !matches!(
                    t.as_str(),
                    "builtins" | "__builtin__" | "bytearray" | "_codecs" | "encode"
                ) {
                    latin1 = Some(t.clone());
                }
            }
            if t == "handle" || t == "best_ntree_limit" {
                key = Some(t);
            }
        }
        if let Some(d) = data {
            if key.as_deref() == Some("handle") && model.is_none() {
                model = Some(d);
                key = None;
            }
        }
        if let Some(i) = int {
            if key.as_deref() == Some("best_ntree_limit") {
                limit = i;
                key = None;
            }
        }
    }
    let model = model.ok_or("no Booster 'handle' bytes in the pickle")?;
    Ok(Pickled {
        model,
        best_ntree_limit: limit,
    })
}

/// The bytes left of a cursor, read as little-endian numbers.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> std::result::Result<i32, String> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> std::result::Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> std::result::Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.array()?)).map_err(|_| "huge length".into())
    }
    fn text(&mut self, n: usize) -> std::result::Result<String, String> {
        let bytes = self.take(n)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
    fn line(&mut self) -> std::result::Result<(), String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        self.at += n + 1;
        Ok(())
    }
    /// A dmlc string: u64 length, then the bytes.
    fn string(&mut self) -> std::result::Result<String, String> {
        let n = self.u64()?;
        if n > 1 << 20 {
            return Err(format!("a name of {n} bytes"));
        }
        self.text(n)
    }
}

/// Reads the legacy binary layout.
fn binary(bytes: &[u8]) -> std::result::Result<XgboostJson, String> {
    let mut r = Cursor { b: bytes, at: 0 };
    if bytes.starts_with(b"binf") {
        r.take(4)?;
    }
    let learner = r.take(136)?;
    let mut p = Cursor { b: learner, at: 0 };
    let base_score = p.f32()?;
    let num_feature = p.u32()? as usize;
    let num_class = p.i32()?.max(0) as usize;
    let (_extra_attrs, _eval_metrics) = (p.i32()?, p.i32()?);
    let major_version = p.u32()?;
    let objective = r.string()?;
    let booster = r.string()?;
    if booster != "gbtree" {
        // DART scales each tree by a weight this reader does not apply.
        return Err(format!("booster '{booster}' is not served (only gbtree)"));
    }
    if num_class > 100_000 || num_feature > 1 << 20 {
        return Err(format!("{num_feature} features and {num_class} classes"));
    }
    if Link::of_objective(&objective).is_none() {
        return Err(format!("objective '{objective}' is not supported"));
    }
    let gbtree = r.take(160)?;
    let num_trees = Cursor { b: gbtree, at: 0 }.i32()?;
    let num_trees = usize::try_from(num_trees).map_err(|_| "a negative tree count")?;
    if num_trees > 10_000_000 || num_trees * 168 > bytes.len() {
        return Err(format!(
            "{num_trees} trees cannot fit in {} bytes",
            bytes.len()
        ));
    }
    let mut trees = Vec::with_capacity(num_trees);
    for t in 0..num_trees {
        let param = r.take(148)?;
        let num_nodes = Cursor { b: param, at: 4 }.i32()?;
        let num_nodes = usize::try_from(num_nodes)
            .ok()
            .filter(|&n| n > 0 && n * 36 <= bytes.len())
            .ok_or_else(|| format!("tree {t} has {num_nodes} nodes"))?;
        let mut tree = JsonTree {
            left_children: Vec::with_capacity(num_nodes),
            right_children: Vec::with_capacity(num_nodes),
            split_indices: Vec::with_capacity(num_nodes),
            default_left: Vec::with_capacity(num_nodes),
            split_conditions: Vec::with_capacity(num_nodes),
            split_type: Vec::new(),
            categories: Vec::new(),
            categories_nodes: Vec::new(),
            categories_segments: Vec::new(),
            categories_sizes: Vec::new(),
            sum_hessian: Vec::with_capacity(num_nodes),
        };
        for _ in 0..num_nodes {
            let _parent = r.i32()?;
            let (left, right) = (r.i32()?, r.i32()?);
            let split_index = r.u32()?;
            let value = r.f32()?;
            // A leaf has no children (-1); the top bit of the split index is the default
            // direction.
            tree.left_children.push(i64::from(left));
            tree.right_children
                .push(if left < 0 { -1 } else { i64::from(right) });
            tree.split_indices.push(if left < 0 {
                0
            } else {
                i64::from(split_index & 0x7fff_ffff)
            });
            tree.default_left
                .push(IntOrBool::Int(i64::from(split_index >> 31)));
            tree.split_conditions.push(f64::from(value));
        }
        // Node statistics: loss change, hessian sum (the cover), base weight, leaf count.
        let stats = r.take(16 * num_nodes)?;
        for node in stats.chunks_exact(16) {
            let cover = f32::from_le_bytes([node[4], node[5], node[6], node[7]]);
            tree.sum_hessian.push(f64::from(cover));
        }
        trees.push(tree);
    }
    let mut groups = Vec::with_capacity(num_trees);
    for _ in 0..num_trees {
        groups.push(r.i32()?.max(0) as u32);
    }
    // Before XGBoost 1.0 the file held the base score already on the margin scale; from 1.0
    // on, on the output scale (as the JSON format).
    let base = if !base_score.is_finite() {
        0.5
    } else if major_version == 0 {
        match objective.as_str() {
            "binary:logistic" | "reg:logistic" => 1.0 / (1.0 + (-base_score).exp()),
            "count:poisson" | "reg:gamma" | "reg:tweedie" => base_score.exp(),
            _ => base_score,
        }
    } else {
        base_score
    };
    Ok(XgboostJson::from_parts(
        objective,
        num_feature,
        num_class,
        base,
        trees,
        groups,
    ))
}

/// The `Model` of a pickled JSON or UBJSON snapshot (`{"Config": ..., "Model": ...}`).
fn snapshot_model(handle: &[u8]) -> Result<XgboostJson> {
    #[derive(serde::Deserialize)]
    struct Snapshot {
        #[serde(rename = "Model")]
        model: XgboostJson,
    }
    super::ubjson::from_json_or_ubjson::<Snapshot>(handle)
        .map(|s| s.model)
        .map_err(|e| Error::Artifact(format!("pickled XGBoost snapshot: {e}")))
}
