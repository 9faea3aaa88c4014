//! Times one compiled tree model's block walks on the same rows, one core, interleaved runs:
//! the portable walk and each vector walk this CPU has (so an AVX-512 machine measures the AVX2
//! walk too). usage: cargo run --release -p common --example walk_bench -- MODEL.trees
//! ROWS.csv [ROWS] [RUNS]   (ROWS.csv: features only, no label)
use common::models::trees::TreeModel;
#[cfg(target_arch = "x86_64")]
use common::models::trees::VectorWalk;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).unwrap();
    let rows: usize = args.get(3).map_or(50_000, |v| v.parse().unwrap());
    let runs: usize = args.get(4).map_or(10, |v| v.parse().unwrap());
    assert!(runs > 0, "RUNS must be at least 1");
    let text = std::fs::read_to_string(&args[2]).unwrap();
    let lines: Vec<&str> = text.lines().take(rows).collect();
    let width = lines[0].split(',').count();
    let values: Vec<f32> = lines
        .iter()
        .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()))
        .collect();
    let x = ndarray::Array2::from_shape_vec((lines.len(), width), values).unwrap();
    let model = &TreeModel::from_bytes(&bytes, width).unwrap();
    let x = &x;
    type Walk<'a> = (&'static str, Box<dyn Fn() -> ndarray::Array2<f32> + 'a>);
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut walks: Vec<Walk> = vec![(
        "portable",
        Box::new(|| model.predict_margin_portable(x.view())),
    )];
    #[cfg(target_arch = "x86_64")]
    for walk in [VectorWalk::Avx512Bins, VectorWalk::Avx512, VectorWalk::Avx2] {
        if model.can_walk(walk) {
            let name = match walk {
                VectorWalk::Avx512Bins => "avx512 bins",
                VectorWalk::Avx512 => "avx512",
                VectorWalk::Avx2 => "avx2",
            };
            walks.push((
                name,
                Box::new(move || model.predict_margin_vector(x.view(), walk)),
            ));
        }
    }
    let want = (walks[0].1)();
    let mut times = vec![Vec::new(); walks.len()];
    for _ in 0..runs {
        for (w, (name, walk)) in walks.iter().enumerate() {
            let t = Instant::now();
            let got = walk();
            times[w].push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(got, want, "{name} differs from the portable walk");
        }
    }
    for ((name, _), t) in walks.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        println!(
            "{name:>8}: {} rows min {:.1} ms median {:.1} ms ({runs} runs)",
            x.nrows(),
            t[0],
            t[t.len() / 2]
        );
    }
}
