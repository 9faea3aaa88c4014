//! The `out_of_range` output key, for every kind trained here: per record, the features whose
//! values lie outside what training saw. Training stores each numeric feature's smallest and
//! largest value of the train split in the manifest (`training_ranges`); categorical features
//! have their categories there already. A value below the smallest or above the largest, or a
//! category training never held, is flagged; a missing value is not.
//!
//! Answers: JSON and JSON Lines records gain `"out_of_range": ["name", ...]` (empty when none);
//! a CSV line gains one last field, the names joined by `;` (empty when none).

use super::added_keys::{AddedKey, WithKey};
use super::Predictions;
use crate::artifact::Manifest;
use crate::collective::World;
use crate::data::categories;
use crate::data::Dataset;
use crate::error::Result;
use ndarray::ArrayView2;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The output key's name.
pub const KEY: &str = "out_of_range";

/// Most features whose ranges a manifest keeps (a wide sparse libsvm table would make the
/// manifest megabytes long; such models answer no `out_of_range`).
pub const MAX_RANGED_FEATURES: usize = 10_000;

/// Each numeric feature's smallest and largest value in `d` (features without any value and
/// categorical ones are left out), by name; none past [`MAX_RANGED_FEATURES`] features. On
/// several hosts, over every host's rows.
pub fn training_ranges(d: &Dataset, world: &World) -> Result<BTreeMap<String, [f32; 2]>> {
    let mut ranges = BTreeMap::new();
    if d.feature_names.len() > MAX_RANGED_FEATURES {
        tracing::info!(
            features = d.feature_names.len(),
            "too many features to keep their training ranges: the model answers no out_of_range"
        );
        return Ok(ranges);
    }
    // Per feature this host's smallest and largest value (infinities when it has none), then
    // the smallest of the smallest and the largest of the largest over the hosts.
    let width = d.feature_names.len();
    let mut bounds = vec![f64::INFINITY; width];
    bounds.resize(2 * width, f64::NEG_INFINITY);
    for k in 0..width {
        for &v in d.features.column(k).iter().filter(|v| !v.is_nan()) {
            bounds[k] = bounds[k].min(f64::from(v));
            bounds[width + k] = bounds[width + k].max(f64::from(v));
        }
    }
    let over_hosts = world.min_max(&bounds)?;
    for (k, name) in d.feature_names.iter().enumerate() {
        let (lo, hi) = (over_hosts[k][0], over_hosts[width + k][1]);
        if d.encoding.feature(k).is_none() && lo <= hi {
            ranges.insert(name.clone(), [lo as f32, hi as f32]);
        }
    }
    Ok(ranges)
}

/// What a model's training saw, per feature in model order (a few bytes a feature: a
/// multi-model endpoint holds thousands).
#[derive(Debug, Clone)]
pub struct TrainingRanges {
    ranges: Vec<Option<[f32; 2]>>,
}

impl TrainingRanges {
    /// From a manifest, when it holds training ranges or categories (models trained by this
    /// build).
    pub fn of(manifest: &Manifest) -> Option<Self> {
        if manifest.training_ranges.is_empty() && manifest.categories.is_empty() {
            return None;
        }
        Some(Self {
            ranges: manifest
                .feature_names
                .iter()
                .map(|n| manifest.training_ranges.get(n).copied())
                .collect(),
        })
    }

    /// Per record of `x` (model order), the indices of its features outside what training saw.
    pub fn flags(&self, x: ArrayView2<f32>) -> Vec<Vec<u32>> {
        x.rows()
            .into_iter()
            .map(|row| {
                row.iter()
                    .zip(&self.ranges)
                    .enumerate()
                    .filter(|(_, (&v, range))| {
                        categories::is_unseen(v) || range.is_some_and(|[lo, hi]| v < lo || v > hi)
                    })
                    .map(|(k, _)| k as u32)
                    .collect()
            })
            .collect()
    }

    /// Wraps predictions of the records `x` (features named `names`, model order) so that each
    /// answer holds its flags.
    pub fn flag(
        &self,
        inner: Box<dyn Predictions>,
        x: ArrayView2<f32>,
        names: &[String],
    ) -> WithKey {
        WithKey::new(
            inner,
            Box::new(Flags {
                flags: self.flags(x),
                names: names.to_vec(),
            }),
        )
    }
}

/// The flags of a batch of records.
struct Flags {
    flags: Vec<Vec<u32>>,
    names: Vec<String>,
}

impl AddedKey for Flags {
    fn key(&self) -> &'static str {
        KEY
    }

    fn json_value(&self, i: usize, out: &mut String) {
        out.push('[');
        for (n, &k) in self.flags[i].iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(self.names[k as usize].as_str()).to_string());
        }
        out.push(']');
    }

    fn csv_field(&self, i: usize, out: &mut String) {
        let joined: Vec<&str> = self.flags[i]
            .iter()
            .map(|&k| self.names[k as usize].as_str())
            .collect();
        let field = joined.join(";");
        if field.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", field.replace('"', "\"\""));
        } else {
            out.push_str(&field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::tabular::TabularPredictions;
    use ndarray::{arr2, Array1};

    #[test]
    fn values_beyond_training_and_unseen_categories_are_flagged() {
        let d = Dataset {
            features: arr2(&[[1.0, 0.0, 5.0], [3.0, 1.0, f32::NAN]]),
            targets: vec![Array1::zeros(2)],
            feature_names: vec!["iops".into(), "city".into(), "b,\"q\"".into()],
            encoding: categories::Encoding {
                features: vec![
                    None,
                    Some(categories::Categories::new(vec!["a".into(), "b".into()])),
                ],
                classes: None,
            },
            weights: None,
            absent_is_zero: false,
            query_ids: None,
        };
        let ranges = training_ranges(&d, &World::single()).unwrap();
        assert_eq!(ranges["iops"], [1.0, 3.0]);
        assert!(!ranges.contains_key("city"));
        let mut manifest = crate::artifact::tests::manifest_of(&d.feature_names);
        manifest.training_ranges = ranges;
        let t = TrainingRanges::of(&manifest).unwrap();
        let x = arr2(&[
            [2.0, 1.0, 5.0],
            [150_000.0, categories::UNSEEN, 4.0],
            [f32::NAN, f32::NAN, 6.0],
        ]);
        assert_eq!(t.flags(x.view()), vec![vec![], vec![0, 1, 2], vec![2]]);
        let p = t.flag(
            Box::new(TabularPredictions {
                values: arr2(&[[0.5], [0.25], [1.0]]),
                classification: false,
                class_names: None,
            }),
            x.view(),
            &d.feature_names,
        );
        let mut json = String::new();
        p.json_record(1, &mut json);
        assert_eq!(
            json,
            r#"{"score":0.25,"out_of_range":["iops","city","b,\"q\""]}"#
        );
        let mut csv = String::new();
        p.csv_record(1, &mut csv);
        assert_eq!(csv, r#"0.25,"iops;city;b,""q""""#);
        csv.clear();
        p.csv_record(0, &mut csv);
        assert_eq!(csv, "0.5,");
    }
}
