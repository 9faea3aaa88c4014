//! `train datagen fire ...`: writes the original fire generators' data for samples and benchmarks.

use common::datagen::{self, Layout};
use std::io::BufWriter;
use std::path::PathBuf;

const USAGE: &str = "usage: train datagen fire --rows N [--demo M] [--seed S] [--format json|jsonl|csv|csv-label-first] --out FILE
  --rows N    rows of the original 100K generator (label drawn from the threshold score)
  --demo M    add M label-independent 'demo' rows (30 % fire), shuffled in; 200000 + 51000
              reproduces the mix behind the original's reported metrics
  --seed S    random seed (default 7)
  --format    json: the original {\"samples\":[...]} layout (default); jsonl: one sample per line;
              csv: header with the 18 names and label; csv-label-first: no header, label in column 0";

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
    rows: usize,
    demo: usize,
    seed: u64,
    layout: Layout,
    out: PathBuf,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("fire") {
        return Err("the only data set is 'fire'".into());
    }
    let mut a = Args {
        rows: 0,
        demo: 0,
        seed: 7,
        layout: Layout::Json,
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
            "--demo" => a.demo = number()? as usize,
            "--seed" => a.seed = number()?,
            "--format" => {
                a.layout =
                    Layout::parse(value).ok_or_else(|| format!("unknown format '{value}'"))?
            }
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
    let rows = datagen::fire_mix(a.seed, a.rows, a.demo);
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    datagen::write_rows(
        &rows,
        a.layout,
        &mut BufWriter::with_capacity(1 << 20, file),
    )
    .map_err(|e| e.to_string())?;
    let fire = rows.labels.iter().filter(|&&y| y == 1).count() as f64 / rows.labels.len() as f64;
    Ok(format!(
        "{} rows ({} generator + {} demo), fire rate {fire:.4} -> {}",
        rows.labels.len(),
        a.rows,
        a.demo,
        a.out.display()
    ))
}
