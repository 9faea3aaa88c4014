//! Times the fire ensemble's contributions (the default 200-tree forest, 200-round boosting and
//! logistic regression, fitted on 100,000 generator rows) on 200 rows: ours (TreeSHAP of both
//! tree members, the linear form, the combination; one thread, then the rows split over two as
//! `serve` splits a request) beside XGBoost's own `pred_contribs` of the same trees (the 8
//! forest parts and the boosting model; one thread, then all cores), in process, min of 3 runs;
//! and checks each tree member's explanation equals XGBoost's.
//! usage: cargo run --release -p common --example fire_contributions_bench
use common::datagen::fire_dataset;
use common::models::ensemble::{EnsembleParams, MemberModel, Progress};
use ndarray::{s, Array2, ArrayView2};
use std::time::Instant;

struct Quiet;
impl Progress for Quiet {
    fn go_on(&mut self) -> common::Result<bool> {
        Ok(true)
    }
    fn boosting_round(&mut self, _: &str) {}
}

/// Rows explained (depth-10 forest trees make TreeSHAP cost milliseconds a row).
const ROWS: usize = 200;

fn time(f: &mut dyn FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (train, validation) = (fire_dataset(1, 100_000), fire_dataset(2, 20_000));
    let params = EnsembleParams::default();
    let mut ensemble = params
        .fit(
            train,
            &validation,
            &mut Quiet,
            &common::collective::World::single(),
            Default::default(),
        )
        .unwrap()
        .ensemble;
    // As `serve` loads them: the trees from XGBoost's files, with their node covers.
    for (_, model) in &mut ensemble.members {
        if let MemberModel::Trees {
            trees,
            xgboost_models,
        } = model
        {
            *trees = common::models::trees::TreeModel::from_xgboost_files(xgboost_models).unwrap();
        }
    }
    let x = validation.features.slice(s![..ROWS, ..]).to_owned();
    let ours = |x: ArrayView2<f32>| ensemble.contributions(x).unwrap();
    let one = time(&mut || {
        ours(x.view());
    });
    let two = time(&mut || {
        std::thread::scope(|scope| {
            let halves = [x.slice(s![..ROWS / 2, ..]), x.slice(s![ROWS / 2.., ..])];
            let handles: Vec<_> = halves.map(|h| scope.spawn(move || ours(h))).into();
            for h in handles {
                h.join().unwrap();
            }
        });
    });
    // XGBoost's own: every booster of the tree members, as trained.
    let mut boosters = Vec::new();
    for (member, model) in &ensemble.members {
        if let MemberModel::Trees {
            xgboost_models,
            trees,
        } = model
        {
            let parts: Vec<xgb::Booster> = xgboost_models
                .iter()
                .map(|ubj| xgb::Booster::load_buffer(ubj).unwrap())
                .collect();
            boosters.push((member.name(), parts, trees));
        }
    }
    let d = common::models::xgboost::dmatrix(x.view(), None).unwrap();
    let mut theirs = |threads: &str| {
        for (_, parts, _) in &mut boosters {
            for b in parts.iter_mut() {
                b.set_param("nthread", threads).unwrap();
            }
        }
        time(&mut || {
            for (_, parts, _) in &boosters {
                for b in parts {
                    b.predict_contributions(&d).unwrap();
                }
            }
        })
    };
    let (theirs_one, theirs_all) = (theirs("1"), theirs("0"));
    // Each tree member's explanation against XGBoost's (a forest's parts averaged).
    for (name, parts, trees) in &boosters {
        let ours = trees.contributions(x.view()).unwrap();
        let mut want = Array2::<f32>::zeros(ours.dim());
        for b in parts {
            let (values, _) = b.predict_contributions(&d).unwrap();
            want += &(Array2::from_shape_vec(ours.dim(), values).unwrap() / parts.len() as f32);
        }
        let worst = (&ours - &want).mapv(f32::abs).fold(0f32, |a, &b| a.max(b));
        println!(
            "{name}: {} trees in {} booster(s); max |ours - XGBoost| = {worst:.2e}",
            trees.n_trees(),
            parts.len()
        );
    }
    let p = ensemble.predict(x.view()).unwrap().ensemble;
    let phi = ours(x.view());
    let off = phi
        .rows()
        .into_iter()
        .zip(&p)
        .map(|(r, &p)| (r.sum() - p).abs())
        .fold(0f32, f32::max);
    println!("ensemble contributions sum to its probability within {off:.2e}");
    println!(
        "{ROWS} rows: ours {:.1} ms (1 thread), {:.1} ms (2 threads); XGBoost pred_contribs of the same trees {:.1} ms (1 thread), {:.1} ms (all cores); ours / XGBoost: {:.2}x (1 thread), {:.2}x (2 threads vs all cores)",
        one * 1e3,
        two * 1e3,
        theirs_one * 1e3,
        theirs_all * 1e3,
        theirs_one / one,
        theirs_all / two
    );
}
