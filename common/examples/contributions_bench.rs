//! Times contributions (exact TreeSHAP) of a 200-tree, depth-6 binary model on 2,000 rows of
//! 18 features with missing values: ours (one thread) beside XGBoost's own `pred_contribs`
//! (one thread, then all cores), in process, min of 5 runs; and checks they agree.
//! usage: cargo run --release -p common --example contributions_bench
use common::models::trees::TreeModel;
use common::models::xgboost::{self, XgbParams};
use std::time::Instant;

fn main() {
    let (rows, cols) = (20_000, 18);
    let mut state = 11u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32) / (1u64 << 31) as f32
    };
    let x = ndarray::Array2::from_shape_fn((rows, cols), |_| {
        let v = next() * 10.0;
        if next() < 0.05 {
            f32::NAN
        } else {
            v
        }
    });
    let y = x
        .rows()
        .into_iter()
        .map(|r| f32::from(r[0] + r[1] * 0.5 - r[2] > 4.0))
        .collect();
    let m = xgboost::dmatrix(x.view(), Some(&y)).unwrap();
    let p = XgbParams::default()
        .set("objective", "binary:logistic")
        .set("max_depth", 6);
    let b = xgboost::train_rounds(&p, &[(&m, "train")], 200, &mut |_| Ok(true)).unwrap();
    let model = TreeModel::from_xgboost_json(&b.save_buffer(false).unwrap()).unwrap();
    let test = x.slice(ndarray::s![..2000, ..]).to_owned();
    let d = xgboost::dmatrix(test.view(), None).unwrap();
    let time = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let ours = time(&mut || {
        model.contributions(test.view()).unwrap();
    });
    let mut b = b;
    b.set_param("nthread", "1").unwrap();
    let theirs_1 = time(&mut || {
        b.predict_contributions(&d).unwrap();
    });
    b.set_param("nthread", "0").unwrap();
    let theirs_all = time(&mut || {
        b.predict_contributions(&d).unwrap();
    });
    let (want, _) = b.predict_contributions(&d).unwrap();
    let got = model.contributions(test.view()).unwrap();
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, w)| (a - w).abs())
        .fold(0.0f32, f32::max);
    println!("2000 rows, 200 trees depth 6, 18 features: ours (1 thread) {:.1} ms; XGBoost pred_contribs 1 thread {:.1} ms, all cores {:.1} ms; max |difference| {worst:.1e}",
        ours * 1e3, theirs_1 * 1e3, theirs_all * 1e3);
}
