//! The original IOPS dashboard's insight generator (reference-systems.md 2.2), seeded.
//!
//! Per risk level, every numeric field is drawn uniformly from the level's band ("int" fields
//! inclusive integers, the others on a 0.01 grid, as faker draws them); the performance score is
//! drawn inside its level's band and depends on no feature. Insights are generated level by level
//! (50 / 30 / 15 / 5 %, the rounding remainder going to `low` so the total is exactly N) and then
//! shuffled. Timestamps fall in the 90 days before a fixed instant ([`END_EPOCH_MS`], so a seed
//! gives the same file on any day); hour and weekday are UTC, weekday 0 = Sunday as in JavaScript.

use crate::kinds::iops::{FEATURE_NAMES, RAW_FEATURES, RISK_LEVELS};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_pcg::Pcg64;
use std::io::{self, Write};

/// The end of the timestamp window: 2026-01-01T00:00:00Z.
pub const END_EPOCH_MS: i64 = 1_767_225_600_000;
const WINDOW_MS: i64 = 90 * 24 * 3600 * 1000;

/// How a raw field is drawn.
#[derive(Clone, Copy)]
enum Band {
    /// Uniform integer, both ends inclusive.
    Int(i64, i64),
    /// Uniform on a 0.01 grid, both ends inclusive.
    Float(f64, f64),
    /// Computed from other fields or the timestamp.
    Computed,
}

use Band::{Computed, Float, Int};

/// The bands of the 20 raw fields per level (low, medium, high, critical), in feature order.
const BANDS: [[Band; 4]; RAW_FEATURES] = [
    [
        Int(100, 500),
        Int(500, 1500),
        Int(1500, 3000),
        Int(3000, 5000),
    ], // read_iops
    [Int(50, 300), Int(300, 800), Int(800, 2000), Int(2000, 4000)], // write_iops
    [Computed; 4],                                                  // total_iops
    [
        Float(5.0, 20.0),
        Float(20.0, 50.0),
        Float(50.0, 100.0),
        Float(100.0, 200.0),
    ],
    [
        Float(2.0, 8.0),
        Float(8.0, 20.0),
        Float(20.0, 50.0),
        Float(50.0, 150.0),
    ],
    [
        Float(8.0, 15.0),
        Float(20.0, 40.0),
        Float(50.0, 100.0),
        Float(100.0, 250.0),
    ],
    [
        Float(15.0, 25.0),
        Float(40.0, 70.0),
        Float(100.0, 200.0),
        Float(250.0, 500.0),
    ],
    [Int(0, 2), Int(3, 8), Int(10, 25), Int(25, 50)], // latency_spike_count
    [
        Float(50.0, 200.0),
        Float(200.0, 500.0),
        Float(500.0, 1000.0),
        Float(1000.0, 2000.0),
    ],
    [
        Float(2.0, 10.0),
        Float(10.0, 30.0),
        Float(30.0, 70.0),
        Float(70.0, 150.0),
    ],
    [
        Float(0.0, 0.5),
        Float(0.5, 2.0),
        Float(2.0, 5.0),
        Float(5.0, 15.0),
    ], // error_rate
    [
        Float(-0.1, 0.1),
        Float(0.1, 0.5),
        Float(0.5, 1.5),
        Float(1.5, 5.0),
    ], // error_trend
    [Computed; 4], // hour_of_day
    [Computed; 4], // day_of_week
    [
        Int(10_000, 100_000),
        Int(1000, 10_000),
        Int(100, 1000),
        Int(0, 100),
    ],
    [
        Float(0.3, 0.7),
        Float(0.2, 0.5),
        Float(0.1, 0.3),
        Float(0.0, 0.2),
    ], // sequential
    [
        Float(0.3, 0.7),
        Float(0.5, 0.8),
        Float(0.7, 0.9),
        Float(0.8, 1.0),
    ], // random
    [Int(1, 8), Int(8, 32), Int(32, 128), Int(128, 512)], // queue_depth
    [
        Float(4.0, 64.0),
        Float(8.0, 128.0),
        Float(16.0, 256.0),
        Float(32.0, 512.0),
    ],
    [
        Float(1.0, 10.0),
        Float(10.0, 30.0),
        Float(30.0, 70.0),
        Float(70.0, 150.0),
    ],
];

/// Performance score band per level.
const SCORE_BANDS: [(f64, f64); 4] = [(85.0, 100.0), (60.0, 85.0), (30.0, 60.0), (0.0, 30.0)];
/// Share of each level.
const LEVEL_SHARES: [f64; 4] = [0.50, 0.30, 0.15, 0.05];

/// One generated insight.
#[derive(Debug, Clone, PartialEq)]
pub struct Insight {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// 10 random alphanumerics.
    pub device_id: String,
    /// `vol-` and 8 random alphanumerics.
    pub volume_id: String,
    /// The 20 raw fields in feature order.
    pub raw: [f64; RAW_FEATURES],
    /// Risk level index (0 = low .. 3 = critical).
    pub risk: usize,
    /// `mixed`, `random` or `burst`.
    pub workload_type: &'static str,
    /// The anomaly flag.
    pub anomaly_detected: bool,
    /// Performance score in the level's band.
    pub performance_score: f64,
}

fn grid(rng: &mut Pcg64, min: f64, max: f64) -> f64 {
    rng.random_range((min * 100.0).round() as i64..=(max * 100.0).round() as i64) as f64 / 100.0
}

fn alphanumeric(rng: &mut Pcg64, n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn insight(rng: &mut Pcg64, risk: usize) -> Insight {
    let timestamp_ms = END_EPOCH_MS - rng.random_range(0..WINDOW_MS);
    let device_id = alphanumeric(rng, 10);
    let volume_id = format!("vol-{}", alphanumeric(rng, 8));
    let mut raw = [0.0; RAW_FEATURES];
    for (value, bands) in raw.iter_mut().zip(&BANDS) {
        *value = match bands[risk] {
            Int(lo, hi) => rng.random_range(lo..=hi) as f64,
            Float(lo, hi) => grid(rng, lo, hi),
            Computed => 0.0,
        };
    }
    raw[2] = raw[0] + raw[1];
    (raw[12], raw[13]) = hour_and_weekday(timestamp_ms);
    let workload_type = match risk {
        0 => "mixed",
        1 => ["random", "mixed", "burst"][rng.random_range(0..3)],
        2 => ["random", "burst"][rng.random_range(0..2)],
        _ => "burst",
    };
    let anomaly_detected = match risk {
        0 => false,
        1 => rng.random::<bool>(),
        _ => true,
    };
    let (lo, hi) = SCORE_BANDS[risk];
    Insight {
        timestamp_ms,
        device_id,
        volume_id,
        raw,
        risk,
        workload_type,
        anomaly_detected,
        performance_score: grid(rng, lo, hi),
    }
}

/// UTC hour (0-23) and JavaScript weekday (0 = Sunday) of an instant.
fn hour_and_weekday(ms: i64) -> (f64, f64) {
    let seconds = ms.div_euclid(1000);
    let hour = seconds.rem_euclid(86_400) / 3600;
    let weekday = (seconds.div_euclid(86_400) + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    (hour as f64, weekday as f64)
}

/// `n` insights, level by level, then shuffled.
pub fn insights(rng: &mut Pcg64, n: usize) -> Vec<Insight> {
    let mut counts = LEVEL_SHARES.map(|s| (s * n as f64).floor() as usize);
    counts[0] += n - counts.iter().sum::<usize>();
    let mut out = Vec::with_capacity(n);
    for (risk, &count) in counts.iter().enumerate() {
        out.extend((0..count).map(|_| insight(rng, risk)));
    }
    out.shuffle(rng);
    out
}

/// ISO 8601 UTC with milliseconds, as JavaScript's `toISOString`.
pub fn iso_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// The original CSV's column order.
pub fn csv_header() -> String {
    let mut cols = vec!["timestamp", "deviceId", "volumeId"];
    cols.extend(&FEATURE_NAMES[..RAW_FEATURES]);
    cols.extend([
        "risk_level",
        "workload_type",
        "anomaly_detected",
        "performance_score",
    ]);
    cols.join(",")
}

impl Insight {
    /// `(name, JSON value text)` in the original's field order.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let quoted = |s: &str| format!("\"{s}\"");
        let mut out = vec![
            ("timestamp", quoted(&iso_timestamp(self.timestamp_ms))),
            ("deviceId", quoted(&self.device_id)),
            ("volumeId", quoted(&self.volume_id)),
        ];
        for (name, value) in FEATURE_NAMES.iter().zip(self.raw) {
            out.push((name, value.to_string()));
        }
        out.push(("risk_level", quoted(RISK_LEVELS[self.risk])));
        out.push(("workload_type", quoted(self.workload_type)));
        out.push(("anomaly_detected", self.anomaly_detected.to_string()));
        out.push(("performance_score", self.performance_score.to_string()));
        out
    }
}

/// File layouts of the IOPS generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IopsLayout {
    /// The original `training-data.json`: a JSON array, 2-space indent.
    Json,
    /// One insight object per line.
    JsonLines,
    /// The original `training-data.csv`: header, strings double-quoted, booleans bare.
    Csv,
}

impl IopsLayout {
    /// Parses `json`, `jsonl` or `csv`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "jsonl" => Some(Self::JsonLines),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Writes insights in `layout`.
pub fn write(insights: &[Insight], layout: IopsLayout, out: &mut impl Write) -> io::Result<()> {
    match layout {
        IopsLayout::Json => {
            out.write_all(b"[")?;
            for (i, insight) in insights.iter().enumerate() {
                out.write_all(if i == 0 { b"\n  {" } else { b",\n  {" })?;
                for (k, (name, value)) in insight.fields().iter().enumerate() {
                    let sep = if k == 0 { "" } else { "," };
                    write!(out, "{sep}\n    \"{name}\": {value}")?;
                }
                out.write_all(b"\n  }")?;
            }
            out.write_all(b"\n]\n")?;
        }
        IopsLayout::JsonLines => {
            for insight in insights {
                let body: Vec<String> = insight
                    .fields()
                    .iter()
                    .map(|(name, value)| format!("\"{name}\":{value}"))
                    .collect();
                writeln!(out, "{{{}}}", body.join(","))?;
            }
        }
        IopsLayout::Csv => {
            writeln!(out, "{}", csv_header())?;
            for insight in insights {
                let values: Vec<String> = insight.fields().into_iter().map(|(_, v)| v).collect();
                writeln!(out, "{}", values.join(","))?;
            }
        }
    }
    out.flush()
}

/// The original `training-stats.json` figures: per-level counts, anomalies, workload types.
pub fn stats(insights: &[Insight]) -> serde_json::Value {
    let count = |f: &dyn Fn(&Insight) -> bool| insights.iter().filter(|i| f(i)).count();
    let distribution: serde_json::Map<String, serde_json::Value> = RISK_LEVELS
        .iter()
        .enumerate()
        .map(|(k, name)| (name.to_string(), count(&|i| i.risk == k).into()))
        .collect();
    let workloads: serde_json::Map<String, serde_json::Value> =
        ["sequential", "random", "mixed", "burst"]
            .iter()
            .map(|w| (w.to_string(), count(&|i| i.workload_type == *w).into()))
            .collect();
    serde_json::json!({
        "total": insights.len(),
        "distribution": distribution,
        "anomalies": count(&|i| i.anomaly_detected),
        "workload_types": workloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Format, RowSink};
    use crate::kinds::iops::{schema, Models};

    #[test]
    fn levels_bands_and_shares_follow_the_original() {
        let all = insights(&mut crate::datagen::rng(3), 10_000);
        let s = stats(&all);
        assert_eq!(s["total"], 10_000);
        for (name, n) in [
            ("low", 5000),
            ("medium", 3000),
            ("high", 1500),
            ("critical", 500),
        ] {
            assert_eq!(s["distribution"][name], n);
        }
        assert_eq!(s["workload_types"]["sequential"], 0);
        let anomalies = s["anomalies"].as_u64().unwrap();
        assert!((3350..3650).contains(&anomalies), "{anomalies}");
        for i in &all {
            for (k, bands) in BANDS.iter().enumerate() {
                match bands[i.risk] {
                    Int(lo, hi) => assert!((lo as f64..=hi as f64).contains(&i.raw[k])),
                    Float(lo, hi) => assert!((lo..=hi).contains(&i.raw[k])),
                    Computed => {}
                }
            }
            assert_eq!(i.raw[2], i.raw[0] + i.raw[1]);
            let (lo, hi) = SCORE_BANDS[i.risk];
            assert!((lo..=hi).contains(&i.performance_score));
            assert!(i.timestamp_ms <= END_EPOCH_MS && i.timestamp_ms > END_EPOCH_MS - WINDOW_MS);
        }
        // Shuffled: the first 100 are not all one level.
        assert!(all[..100].iter().any(|i| i.risk != all[0].risk));
        assert_eq!(
            insights(&mut crate::datagen::rng(3), 50),
            insights(&mut crate::datagen::rng(3), 50)
        );
    }

    #[test]
    fn timestamps_match_javascript() {
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_timestamp(END_EPOCH_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(iso_timestamp(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        // 2025-12-25 13:00 UTC was a Thursday (getDay 4); 2025-12-28 a Sunday (0).
        assert_eq!(iso_timestamp(1_766_667_600_000), "2025-12-25T13:00:00.000Z");
        assert_eq!(hour_and_weekday(1_766_667_600_000), (13.0, 4.0));
        assert_eq!(hour_and_weekday(1_766_880_000_000), (0.0, 0.0));
    }

    #[test]
    fn every_layout_loads_back_with_both_labels() {
        let all = insights(&mut crate::datagen::rng(5), 40);
        let models = Models {
            classifier: true,
            regressor: true,
        };
        let mut loaded = Vec::new();
        for layout in [IopsLayout::Json, IopsLayout::JsonLines, IopsLayout::Csv] {
            let mut bytes = Vec::new();
            write(&all, layout, &mut bytes).unwrap();
            let mut sink = RowSink::default();
            let format = if layout == IopsLayout::Csv {
                Format::Csv
            } else {
                Format::Json
            };
            format
                .parse(bytes.as_slice(), &schema(models), "gen", &mut sink)
                .unwrap();
            assert_eq!(sink.len(), 40);
            loaded.push(sink);
        }
        for sink in &loaded {
            assert_eq!(sink.features, loaded[0].features);
            assert_eq!(sink.labels, loaded[0].labels);
        }
        let first = &loaded[0];
        assert_eq!(first.labels[0] as usize, all[0].risk);
        assert_eq!(
            f64::from(first.labels[1]),
            all[0].performance_score as f32 as f64
        );
        assert_eq!(f64::from(first.features[4]), all[0].raw[4] as f32 as f64);
    }
}
