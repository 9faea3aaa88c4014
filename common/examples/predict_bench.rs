//! Times the fire ensemble's prediction of one batch payload (min of N runs), in process.
//! usage: cargo run --release -p common --example predict_bench -- MODEL_DIR ROWS.csv [ROWS] [RUNS]
use common::artifact::Manifest;
use common::models::ensemble::FireEnsemble;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let rows: usize = args.get(3).map_or(18_300, |v| v.parse().unwrap());
    let runs: usize = args.get(4).map_or(15, |v| v.parse().unwrap());
    let text = std::fs::read_to_string(&args[2]).unwrap();
    let values: Vec<f32> = text
        .lines()
        .take(rows)
        .flat_map(|l| {
            l.split(',')
                .map(|v| v.parse::<f32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let x = ndarray::Array2::from_shape_vec((rows, 18), values).unwrap();
    let manifest = Manifest::load(dir).unwrap();
    let model = FireEnsemble::load(dir, &manifest).unwrap();
    // As `serve` predicts: the tree members walked side by side where that pays.
    let together = model.tree_members_together();
    let mut best = f64::INFINITY;
    let mut check = 0.0f32;
    for _ in 0..runs {
        let t = Instant::now();
        let p = model.predict_with(x.view(), together.as_ref()).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        check = p.ensemble.iter().sum();
    }
    println!(
        "{rows} rows: min {:.1} us of {runs} (checksum {check})",
        best * 1e6
    );
}
