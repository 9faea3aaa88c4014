//! The original fire system's synthetic data generators, seeded.
//!
//! [`fire_rows`] is the 100K generator (reference-systems.md 1.2): 18 features drawn
//! independently, column by column, then a threshold score, Gaussian noise and a Bernoulli label.
//! [`demo_rows`] is the "demo data" generator (1.4): features independent of the label, 30 % fire.
//! 200,000 + 51,000 of these reproduce the mix behind the original's reported metrics.
//! The random stream is PCG64 (rand_pcg), so a seed gives the same rows on every platform.

pub mod iops;

use crate::kinds::fire::FEATURE_NAMES;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Gamma, Normal, Uniform};
use rand_pcg::Pcg64;
use std::io::{self, Write};

/// Generated rows: features row-major (18 per row) and 0/1 labels.
#[derive(Debug, Default, Clone)]
pub struct Rows {
    /// 18 values per row, in [`FEATURE_NAMES`] order.
    pub features: Vec<f64>,
    /// One 0/1 label per row.
    pub labels: Vec<u8>,
}

/// A seeded random stream for the generators.
pub fn rng(seed: u64) -> Pcg64 {
    Pcg64::seed_from_u64(seed)
}

fn normal(rng: &mut Pcg64, n: usize, mean: f64, sd: f64, lo: f64, hi: f64) -> Vec<f64> {
    let d = Normal::new(mean, sd).expect("valid normal");
    (0..n).map(|_| d.sample(rng).clamp(lo, hi)).collect()
}

fn gamma(rng: &mut Pcg64, n: usize, shape: f64, scale: f64, hi: f64) -> Vec<f64> {
    let d = Gamma::new(shape, scale).expect("valid gamma");
    (0..n).map(|_| d.sample(rng).clamp(0.0, hi)).collect()
}

fn beta(rng: &mut Pcg64, n: usize, a: f64, b: f64, scale: f64) -> Vec<f64> {
    let d = Beta::new(a, b).expect("valid beta");
    (0..n).map(|_| scale * d.sample(rng)).collect()
}

/// `n` rows of the original 100K generator.
pub fn fire_rows(rng: &mut Pcg64, n: usize) -> Rows {
    let cols: [Vec<f64>; 18] = [
        normal(rng, n, 25.0, 15.0, -40.0, 330.0),    // t_mean
        gamma(rng, n, 2.0, 5.0, 50.0),               // t_std
        normal(rng, n, 45.0, 20.0, -40.0, 330.0),    // t_max
        normal(rng, n, 40.0, 18.0, -40.0, 330.0),    // t_p95
        beta(rng, n, 2.0, 5.0, 100.0),               // t_hot_area_pct
        beta(rng, n, 1.0, 4.0, 50.0),                // t_hot_largest_blob_pct
        gamma(rng, n, 2.0, 3.0, 20.0),               // t_grad_mean
        gamma(rng, n, 1.0, 2.0, 10.0),               // t_grad_std
        gamma(rng, n, 2.0, 4.0, 30.0),               // t_diff_mean
        gamma(rng, n, 1.0, 3.0, 15.0),               // t_diff_std
        gamma(rng, n, 2.0, 2.0, 15.0),               // flow_mag_mean
        gamma(rng, n, 1.0, 1.5, 8.0),                // flow_mag_std
        normal(rng, n, 30.0, 15.0, 0.0, 100.0),      // tproxy_val
        normal(rng, n, 0.0, 10.0, -50.0, 50.0),      // tproxy_delta
        normal(rng, n, 0.0, 5.0, -20.0, 20.0),       // tproxy_vel
        normal(rng, n, 450.0, 200.0, 400.0, 5000.0), // gas_val
        normal(rng, n, 0.0, 100.0, -500.0, 500.0),   // gas_delta
        normal(rng, n, 0.0, 15.0, -50.0, 50.0),      // gas_vel
    ];
    let noise = Normal::new(0.0, 0.05).expect("valid normal");
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            let row: [f64; 18] = std::array::from_fn(|c| cols[c][i]);
            fire_score(&row)
        })
        .collect();
    let probs: Vec<f64> = scores
        .iter()
        .map(|s| (s + noise.sample(rng)).clamp(0.0, 1.0))
        .collect();
    let labels = probs
        .iter()
        .map(|&p| u8::from(rng.random::<f64>() < p))
        .collect();
    let mut features = Vec::with_capacity(n * 18);
    for i in 0..n {
        features.extend(cols.iter().map(|c| c[i]));
    }
    Rows { features, labels }
}

/// The generator's fire score of one row: weighted threshold tests plus two interaction
/// terms, clipped to [0, 1] (before noise).
pub fn fire_score(r: &[f64; 18]) -> f64 {
    let [t_mean, _, t_max, t_p95, hot_area, blob, grad_mean, _, diff_mean, _, _, _, _, _, _, gas_val, gas_delta, _] =
        *r;
    let tests = [
        (t_max > 60.0, 0.30),
        (t_p95 > 55.0, 0.25),
        (t_mean > 40.0, 0.20),
        (hot_area > 15.0, 0.20),
        (blob > 5.0, 0.15),
        (grad_mean > 8.0, 0.15),
        (diff_mean > 12.0, 0.15),
        (gas_val > 800.0, 0.25),
        (gas_delta > 150.0, 0.20),
        (t_max > 70.0 && gas_val > 1000.0, 0.30),
        (hot_area > 20.0 && grad_mean > 10.0, 0.20),
    ];
    let s: f64 = tests.iter().filter(|(hit, _)| *hit).map(|(_, w)| w).sum();
    s.clamp(0.0, 1.0)
}

/// One demo-generator column: normal (mean, sd) or uniform [low, high).
#[derive(Clone, Copy)]
enum Draw {
    Normal(f64, f64),
    Uniform(f64, f64),
}

/// The demo generator's 18 columns, in feature order (reference-systems.md 1.4).
const DEMO_COLUMNS: [Draw; 18] = [
    Draw::Normal(25.0, 5.0),
    Draw::Uniform(0.0, 10.0),
    Draw::Normal(50.0, 15.0),
    Draw::Normal(45.0, 12.0),
    Draw::Uniform(0.0, 100.0),
    Draw::Uniform(0.0, 50.0),
    Draw::Normal(0.0, 2.0),
    Draw::Uniform(0.0, 5.0),
    Draw::Normal(0.0, 3.0),
    Draw::Uniform(0.0, 4.0),
    Draw::Uniform(0.0, 10.0),
    Draw::Uniform(0.0, 5.0),
    Draw::Normal(30.0, 8.0),
    Draw::Normal(0.0, 5.0),
    Draw::Normal(0.0, 2.0),
    Draw::Normal(400.0, 100.0),
    Draw::Normal(0.0, 50.0),
    Draw::Normal(0.0, 10.0),
];

/// `m` rows of the label-independent demo generator (draws per sample, in column order).
pub fn demo_rows(rng: &mut Pcg64, m: usize) -> Rows {
    let mut out = Rows {
        features: Vec::with_capacity(m * 18),
        labels: Vec::with_capacity(m),
    };
    for _ in 0..m {
        for column in DEMO_COLUMNS {
            out.features.push(match column {
                Draw::Normal(mean, sd) => Normal::new(mean, sd).expect("valid normal").sample(rng),
                Draw::Uniform(low, high) => {
                    Uniform::new(low, high).expect("valid uniform").sample(rng)
                }
            });
        }
        out.labels.push(u8::from(rng.random::<f64>() < 0.3));
    }
    out
}

/// `n` generator rows as the fire ensemble's training rows (benchmarks and tests).
pub fn fire_dataset(seed: u64, n: usize) -> crate::data::Dataset {
    let rows = fire_mix(seed, n, 0);
    let sink = crate::data::RowSink {
        features: rows.features.iter().map(|&v| v as f32).collect(),
        labels: rows.labels.iter().map(|&l| f32::from(l)).collect(),
        rows: n,
    };
    let names = FEATURE_NAMES.map(str::to_owned).to_vec();
    crate::data::Dataset::from_sink(sink, names, 1)
}

/// `n` generator rows plus `demo` demo rows, shuffled together when both are present.
pub fn fire_mix(seed: u64, n: usize, demo: usize) -> Rows {
    let mut r = rng(seed);
    let mut rows = fire_rows(&mut r, n);
    if demo == 0 {
        return rows;
    }
    let d = demo_rows(&mut r, demo);
    rows.features.extend(d.features);
    rows.labels.extend(d.labels);
    let mut order: Vec<usize> = (0..rows.labels.len()).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut r);
    let features = order
        .iter()
        .flat_map(|&i| rows.features[i * 18..(i + 1) * 18].iter().copied())
        .collect();
    let labels = order.iter().map(|&i| rows.labels[i]).collect();
    Rows { features, labels }
}

/// File layouts the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The original `{"samples":[{"features":{...},"label":0},...]}`, compact.
    Json,
    /// One `{"features":{...},"label":0}` per line.
    JsonLines,
    /// Header of the 18 names and `label`, label last (the original trainer's CSV).
    CsvHeader,
    /// No header, label in column 0 (SageMaker's built-in convention).
    CsvLabelFirst,
}

impl Layout {
    /// Parses a layout name: `json`, `jsonl`, `csv`, `csv-label-first`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Layout::Json),
            "jsonl" => Some(Layout::JsonLines),
            "csv" => Some(Layout::CsvHeader),
            "csv-label-first" => Some(Layout::CsvLabelFirst),
            _ => None,
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Layout::Json => "json",
            Layout::JsonLines => "jsonl",
            Layout::CsvHeader | Layout::CsvLabelFirst => "csv",
        }
    }
}

/// Writes rows in `layout` to `out` (buffer it: this writes many small pieces).
pub fn write_rows(rows: &Rows, layout: Layout, out: &mut impl Write) -> io::Result<()> {
    let features = |i: usize| &rows.features[i * 18..(i + 1) * 18];
    let write_object = |out: &mut dyn Write, i: usize| -> io::Result<()> {
        out.write_all(b"{\"features\":{")?;
        for (k, (name, v)) in FEATURE_NAMES.iter().zip(features(i)).enumerate() {
            let sep = if k == 0 { "" } else { "," };
            write!(out, "{sep}\"{name}\":{v}")?;
        }
        write!(out, "}},\"label\":{}}}", rows.labels[i])
    };
    match layout {
        Layout::Json => {
            out.write_all(b"{\"samples\":[")?;
            for i in 0..rows.labels.len() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_object(out, i)?;
            }
            out.write_all(b"]}")?;
        }
        Layout::JsonLines => {
            for i in 0..rows.labels.len() {
                write_object(out, i)?;
                out.write_all(b"\n")?;
            }
        }
        Layout::CsvHeader => {
            writeln!(out, "{},label", FEATURE_NAMES.join(","))?;
            for i in 0..rows.labels.len() {
                for v in features(i) {
                    write!(out, "{v},")?;
                }
                writeln!(out, "{}", rows.labels[i])?;
            }
        }
        Layout::CsvLabelFirst => {
            for i in 0..rows.labels.len() {
                write!(out, "{}", rows.labels[i])?;
                for v in features(i) {
                    write!(out, ",{v}")?;
                }
                writeln!(out)?;
            }
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(rows: &Rows, f: impl Fn(&[f64]) -> bool) -> f64 {
        let n = rows.labels.len();
        (0..n)
            .filter(|&i| f(&rows.features[i * 18..(i + 1) * 18]))
            .count() as f64
            / n as f64
    }

    /// The generator's statistics, as reference-systems.md 1.2 derives them analytically.
    #[test]
    fn generator_matches_the_published_statistics() {
        let rows = fire_rows(&mut rng(1), 200_000);
        let fire = rows.labels.iter().filter(|&&y| y == 1).count() as f64 / 200_000.0;
        assert!((0.502..=0.513).contains(&fire), "fire rate {fire}");
        for (what, got, want) in [
            (
                "gas_val at the 400 clip",
                share(&rows, |r| r[15] == 400.0),
                0.401,
            ),
            ("t_max > 60", share(&rows, |r| r[2] > 60.0), 0.227),
            ("t_p95 > 55", share(&rows, |r| r[3] > 55.0), 0.202),
            ("t_mean > 40", share(&rows, |r| r[0] > 40.0), 0.159),
            ("hot_area > 15", share(&rows, |r| r[4] > 15.0), 0.776),
            ("blob > 5", share(&rows, |r| r[5] > 5.0), 0.656),
            ("grad_mean > 8", share(&rows, |r| r[6] > 8.0), 0.255),
            ("diff_mean > 12", share(&rows, |r| r[8] > 12.0), 0.199),
            ("gas_val > 800", share(&rows, |r| r[15] > 800.0), 0.040),
            ("gas_delta > 150", share(&rows, |r| r[16] > 150.0), 0.067),
        ] {
            assert!(
                (got - want).abs() < 0.005,
                "{what}: {got:.4} vs published {want}"
            );
        }
        let demo = demo_rows(&mut rng(2), 50_000);
        let demo_fire = demo.labels.iter().filter(|&&y| y == 1).count() as f64 / 50_000.0;
        assert!((demo_fire - 0.3).abs() < 0.01, "demo fire rate {demo_fire}");
        assert!(
            (share(&demo, |r| r[6] < 0.0) - 0.5).abs() < 0.01,
            "half the demo rows have negative t_grad_mean"
        );
    }

    #[test]
    fn seeded_and_written_in_every_layout() {
        let a = fire_mix(5, 30, 10);
        assert_eq!(a.features, fire_mix(5, 30, 10).features);
        assert_ne!(a.features, fire_mix(6, 30, 10).features);
        for layout in [
            Layout::Json,
            Layout::JsonLines,
            Layout::CsvHeader,
            Layout::CsvLabelFirst,
        ] {
            let mut out = Vec::new();
            write_rows(&a, layout, &mut out).unwrap();
            let mut sink = crate::data::RowSink::default();
            let format = if layout.extension() == "csv" {
                crate::data::Format::Csv
            } else {
                crate::data::Format::Json
            };
            format
                .parse(&out[..], &crate::kinds::fire::schema(), "x", &mut sink)
                .unwrap();
            assert_eq!(
                sink.labels,
                a.labels.iter().map(|&y| f32::from(y)).collect::<Vec<_>>(),
                "{layout:?}"
            );
            let want: Vec<f32> = a.features.iter().map(|&v| v as f32).collect();
            assert_eq!(sink.features, want, "{layout:?}");
        }
    }
}
