//! `train datagen fire|iops ...`: writes the original generators' data for samples and benchmarks.

use common::datagen::iops::{self as iops_gen, IopsLayout};
use common::datagen::{self, Layout};
use std::io::BufWriter;
use std::path::PathBuf;

const USAGE: &str = "usage: train datagen fire --rows N [--demo M] [--seed S] [--format json|jsonl|csv|csv-label-first] --out FILE
       train datagen iops [--rows N] [--seed S] [--format json|jsonl|csv] --out FILE
  --rows N    rows of the original 100K generator (label drawn from the threshold score)
  --demo M    add M label-independent 'demo' rows (30 % fire), shuffled in; 200000 + 51000
              reproduces the mix behind the original's reported metrics
  --seed S    random seed (default 7)
  --format    json: the original {\"samples\":[...]} layout (default); jsonl: one sample per line;
              csv: header with the 18 names and label; csv-label-first: no header, label in column 0
  iops        the IOPS insight generator: N insights (default 10000) at 50/30/15/5 % low/medium/
              high/critical; json: the original's array (default); jsonl; csv: the original's CSV";

/// Runs the generator command with the arguments after `datagen`; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    match parse(args).and_then(|a| generate(&a)) {
        Ok(msg) => {
            eprintln!("{msg}");
            0
        }
        Err(e) => {
            eprintln!("datagen: {e}\n{USAGE}");
            2
        }
    }
}

struct Args {
    dataset: Dataset,
    rows: usize,
    demo: usize,
    seed: u64,
    format: String,
    out: PathBuf,
}

/// Which generator runs.
#[derive(Clone, Copy, PartialEq)]
enum Dataset {
    Fire,
    Iops,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    let dataset = match it.next().map(String::as_str) {
        Some("fire") => Dataset::Fire,
        Some("iops") => Dataset::Iops,
        _ => return Err("name a data set: fire or iops".into()),
    };
    let mut a = Args {
        dataset,
        rows: if dataset == Dataset::Iops { 10_000 } else { 0 },
        demo: 0,
        seed: 7,
        format: "json".into(),
        out: PathBuf::new(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: '{value}' is not a whole number"))
        };
        match flag.as_str() {
            "--rows" => a.rows = number()? as usize,
            "--demo" if dataset == Dataset::Fire => a.demo = number()? as usize,
            "--seed" => a.seed = number()?,
            "--format" => a.format = value.clone(),
            "--out" => a.out = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.rows + a.demo == 0 || a.out.as_os_str().is_empty() {
        return Err("--rows (or --demo) and --out are required".into());
    }
    Ok(a)
}

fn generate(a: &Args) -> Result<String, String> {
    let unknown = || format!("unknown format '{}'", a.format);
    let (iops_layout, fire_layout) = match a.dataset {
        Dataset::Iops => (
            Some(IopsLayout::parse(&a.format).ok_or_else(unknown)?),
            None,
        ),
        Dataset::Fire => (None, Some(Layout::parse(&a.format).ok_or_else(unknown)?)),
    };
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if let Some(layout) = iops_layout {
        let insights = iops_gen::insights(&mut datagen::rng(a.seed), a.rows);
        iops_gen::write(&insights, layout, &mut out).map_err(|e| e.to_string())?;
        return Ok(format!(
            "{} -> {}",
            iops_gen::stats(&insights),
            a.out.display()
        ));
    }
    let rows = datagen::fire_mix(a.seed, a.rows, a.demo);
    datagen::write_rows(&rows, fire_layout.expect("fire"), &mut out).map_err(|e| e.to_string())?;
    let fire = rows.labels.iter().filter(|&&y| y == 1).count() as f64 / rows.labels.len() as f64;
    Ok(format!(
        "{} rows ({} generator + {} demo), fire rate {fire:.4} -> {}",
        rows.labels.len(),
        a.rows,
        a.demo,
        a.out.display()
    ))
}
