//! The job's rows by role: the `train` channel (or `training`), optional `validation` and `test`
//! channels, and what is held out of `train` when they are absent.

use crate::config::{ChannelConfig, SplitConfig};
use crate::{distributed, Job};
use common::collective::World;
use common::data::categories::Encoding;
use common::data::tabular::{self, TabularOptions, TrainColumns};
use common::data::{self, Dataset, Schema};
use common::opt_ml::OptMl;
use common::{split, Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The three splits a fit uses.
pub struct Splits {
    /// Rows to fit on.
    pub train: Dataset,
    /// Rows for early stopping, weights and model choice.
    pub validation: Dataset,
    /// Rows for the reported metrics.
    pub test: Option<Dataset>,
}

impl Splits {
    /// Rows per split, for reports and the manifest.
    pub fn rows(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("train", self.train.len()),
            ("validation", self.validation.len()),
            ("test", self.test.as_ref().map_or(0, Dataset::len)),
        ])
    }
}

/// Rows per split over every host, for reports and the manifest.
pub fn total_rows(splits: &Splits, world: &World) -> Result<BTreeMap<&'static str, usize>> {
    let mut rows = splits.rows();
    sum_over_hosts(&mut rows, world)?;
    Ok(rows)
}

/// Each count summed over every host, in place.
pub fn sum_over_hosts(rows: &mut BTreeMap<&'static str, usize>, world: &World) -> Result<()> {
    let mut counts: Vec<f64> = rows.values().map(|&n| n as f64).collect();
    world.sum(&mut counts)?;
    for (n, total) in rows.values_mut().zip(counts) {
        *n = total as usize;
    }
    Ok(())
}

/// What the channels after `train` must match: its width, its CSV header's feature names, and
/// its text columns.
pub struct Columns {
    width: usize,
    header: Option<Vec<String>>,
    encoding: Encoding,
}

/// A check of a model's own on the rows (e.g. both classes present); gets the rows and a name.
pub type RowCheck<'a> = &'a dyn Fn(&Dataset, &str) -> Result<()>;

/// How channel files become rows.
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    /// Named features and labels (the fire and IOPS models).
    Schema(&'a Schema),
    /// Columns taken from the data (`model_kind=tabular`).
    Tabular(&'a TabularOptions),
}

impl Reader<'_> {
    /// Loads one channel. Tabular channels after the first are made to match it (`like`): the
    /// columns of a CSV header are matched to the train header by name, libsvm rows are widened
    /// to its width, and any other width is an error. Returns the rows and what later channels
    /// must match.
    fn load(
        self,
        dir: &Path,
        name: &str,
        content_type: Option<&str>,
        like: Option<&Columns>,
        poll: &dyn Fn() -> Result<()>,
    ) -> Result<(Dataset, Columns)> {
        let options = match self {
            Reader::Schema(schema) => {
                let rows = data::load_channel(dir, name, content_type, schema, poll)?;
                let columns = Columns {
                    width: rows.features.ncols(),
                    header: None,
                    encoding: Encoding::default(),
                };
                return Ok((rows, columns));
            }
            Reader::Tabular(options) => options,
        };
        let train = like.map(|l| TrainColumns {
            header: l.header.as_deref(),
            encoding: &l.encoding,
        });
        let mut table = tabular::load_channel(dir, name, content_type, options, train, poll)?;
        if let Some(like) = like {
            if table.width < like.width && !table.is_dense() {
                table.widen(like.width);
            }
            if table.width != like.width {
                return Err(Error::Data(format!(
                    "channel '{name}' has {} features, the train channel {}",
                    table.width, like.width
                )));
            }
        }
        let columns = Columns {
            width: table.width,
            header: table.names.clone(),
            encoding: table.encoding.clone(),
        };
        Ok((table.into_dataset(), columns))
    }
}

/// The channels as given: `train` (or `training`), and `validation` and `test` when present.
pub struct Channels {
    /// The `train` channel's rows.
    pub train: Dataset,
    /// The `validation` channel's rows.
    pub validation: Option<Dataset>,
    /// The `test` channel's rows.
    pub test: Option<Dataset>,
}

/// Loads every channel with `reader`; later channels are matched to `train`'s columns. `check`
/// runs on the `train` channel.
///
/// On several hosts each host keeps its share of a channel every host holds alike
/// (`FullyReplicated`), and all of a channel whose files are its own (`ShardedByS3Key`).
pub fn load_channels(job: &Job, reader: Reader, check: RowCheck) -> Result<Channels> {
    let Job {
        opt_ml,
        channels,
        stop,
        world,
        hosts,
        ..
    } = *job;
    let poll = || stop.check();
    let load = |name: &str, content_type: Option<&str>, like: Option<&Columns>| -> Result<_> {
        let (rows, columns) =
            reader.load(&opt_ml.channel_dir(name), name, content_type, like, &poll)?;
        let rows = if distributed::is_replicated(channels.get(name)) {
            distributed::share(rows, world)
        } else {
            rows
        };
        if world.is_distributed() {
            tracing::info!(channel = name, rows = rows.len(), "this host's rows");
        }
        Ok((rows, columns))
    };
    for name in channels
        .keys()
        .filter(|n| !["train", "training", "validation", "test"].contains(&n.as_str()))
    {
        tracing::warn!(channel = %name, "ignoring a channel this model does not use (known: train or training, validation, test)");
    }
    let (train_name, train_ct) =
        channel(opt_ml, channels, &["train", "training"])?.ok_or_else(|| {
            Error::Config(format!(
                "Missing required channel: train (also accepted: training) under {}",
                opt_ml.data_dir().display()
            ))
        })?;
    let loaded = load(train_name, train_ct, None);
    if world.is_distributed() {
        // An empty shard: no data files here (the load says so too, as this host's reason).
        let no_files = data::files::listed(&opt_ml.channel_dir(train_name))
            .is_ok_and(|files| files.is_empty());
        let here = match &loaded {
            Ok((d, _)) => d.len() as f64,
            Err(_) if no_files => 0.0,
            Err(_) => -1.0,
        };
        every_host_has_rows(here, train_name, world, hosts)?;
    }
    let (mut train, mut columns) = loaded?;
    if let Reader::Tabular(_) = reader {
        distributed::agree_on_columns(&mut train, world)?;
        columns.width = train.features.ncols();
        columns.header = columns.header.map(|_| train.feature_names.clone());
    }
    check(&train, train_name)?;
    let later = |name: &'static str| {
        channel(opt_ml, channels, &[name])?
            .map(|(n, ct)| load(n, ct, Some(&columns)).map(|(rows, _)| rows))
            .transpose()
    };
    let channels = Channels {
        validation: later("validation")?,
        test: later("test")?,
        train,
    };
    // Every host must hold the same channels, or their steps would differ.
    let held =
        [channels.validation.is_some(), channels.test.is_some()].map(|h| f64::from(u8::from(h)));
    let m = world.min_max(&held)?;
    for (k, name) in ["validation", "test"].into_iter().enumerate() {
        if m[k][0] != m[k][1] {
            return Err(Error::Data(format!(
                "channel '{name}' has files on some hosts only; with S3DistributionType=ShardedByS3Key give it at least as many files as hosts"
            )));
        }
    }
    Ok(channels)
}

/// On several hosts, fails every host alike when one holds no rows of the train channel (an
/// empty shard) or could not read it (`here`: this host's rows, -1 when it could not read them):
/// the hosts' steps would differ from there on. A host that could not read its rows goes on to
/// its own error.
fn every_host_has_rows(here: f64, channel: &str, world: &World, hosts: &[String]) -> Result<()> {
    // Each host's row count in its own slot; summed, every host sees them all.
    let mut rows = vec![0.0; world.size()];
    rows[world.rank()] = here;
    world.sum(&mut rows)?;
    if here < 0.0 {
        return Ok(()); // this host's own error says why
    }
    let name = |k: usize| hosts.get(k).cloned().unwrap_or_else(|| format!("rank {k}"));
    let (mut empty, mut failed) = (Vec::new(), Vec::new());
    for (k, &n) in rows.iter().enumerate() {
        if n == 0.0 {
            empty.push(name(k));
        } else if n < 0.0 && k != world.rank() {
            failed.push(name(k));
        }
    }
    if !empty.is_empty() {
        return Err(Error::Data(format!(
            "host(s) {} hold no rows of channel '{channel}': with S3DistributionType=ShardedByS3Key each host trains on its own files, so give the channel at least as many files as hosts ({}), or use FullyReplicated (every host then takes its share of the rows, which needs at least as many rows as hosts); unlike the built-in algorithm, this container does not leave such hosts out",
            empty.join(", "),
            world.size()
        )));
    }
    if !failed.is_empty() {
        return Err(Error::Data(format!(
            "host(s) {} could not read channel '{channel}' (their failure files say why)",
            failed.join(", ")
        )));
    }
    Ok(())
}

/// Loads every channel with `reader` and splits. Held-out splits are stratified by the first
/// target when `stratify` is set (classification), else drawn at random. `check` runs on the
/// whole `train` channel and again on the train split.
pub fn load(job: &Job, reader: Reader, stratify: bool, check: RowCheck) -> Result<Splits> {
    let channels = load_channels(job, reader, check)?;
    split(channels, &job.config.split, stratify, check, job.world)
}

/// Splits the channels: the `validation` (and `test`) channel when given, else rows held out of
/// `train` (stratified by the first target with `stratify`). `check` runs on the train split.
pub fn split(
    channels: Channels,
    config: &SplitConfig,
    stratify: bool,
    check: RowCheck,
    world: &World,
) -> Result<Splits> {
    let Channels {
        train: all,
        validation,
        test,
    } = channels;
    let splits = match validation {
        Some(validation) => Splits {
            train: all,
            validation,
            test,
        },
        None => {
            // Hold out validation (and test, unless a test channel was given) from `train`.
            let test_fraction = if test.is_some() {
                0.0
            } else {
                config.test_fraction
            };
            let strata = if stratify {
                all.labels().to_vec()
            } else {
                vec![0.0; all.len()]
            };
            let ix = split::stratified(
                &strata,
                config.validation_fraction,
                test_fraction,
                config.seed,
            );
            // Decided for all hosts alike: a host with few rows may hold none of it.
            let mut held = [f64::from(u8::from(!ix.test.is_empty()))];
            world.max(&mut held)?;
            let held_test = (held[0] > 0.0).then(|| all.select(&ix.test));
            Splits {
                train: all.select(&ix.train),
                validation: all.select(&ix.validation),
                test: test.or(held_test),
            }
        }
    };
    check(&splits.train, "train split")?;
    // Over every host: a host with few rows may hold no validation rows of its own.
    let mut validation_rows = [splits.validation.len() as f64];
    world.sum(&mut validation_rows)?;
    if validation_rows[0] == 0.0 {
        return Err(Error::Data(
            "the validation split is empty; provide more rows or a validation channel".into(),
        ));
    }
    tracing::info!(
        train = splits.train.len(),
        validation = splits.validation.len(),
        test = splits.test.as_ref().map_or(0, Dataset::len),
        seed = config.seed,
        peak_mib = common::peak_memory_mib(),
        "split sizes"
    );
    Ok(splits)
}

/// The `train` channel (or `training`, the original's name), with its declared ContentType.
fn channel<'a>(
    opt_ml: &OptMl,
    channels: &'a BTreeMap<String, ChannelConfig>,
    names: &[&'static str],
) -> Result<Option<(&'static str, Option<&'a str>)>> {
    for &name in names {
        let cfg = channels.get(name);
        if cfg
            .and_then(|c| c.input_mode.as_deref())
            .is_some_and(|m| m.eq_ignore_ascii_case("pipe"))
        {
            return Err(Error::Config(format!(
                "channel '{name}' uses Pipe input mode, which this container does not support; use File or FastFile"
            )));
        }
        let dir = opt_ml.channel_dir(name);
        if common::access::present(&dir).map_err(|e| Error::io(&dir, e))? {
            return Ok(Some((name, cfg.and_then(|c| c.content_type.as_deref()))));
        }
    }
    Ok(None)
}
