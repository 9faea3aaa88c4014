//! Times the logistic regression's fit on the fire ensemble's training rows (175,700 generator
//! rows), best of 3.
//! usage: cargo run --release -p common --example lr_time
use common::collective::World;
use common::models::logistic::LogisticParams;
use std::time::Instant;

fn main() {
    let d = common::datagen::fire_dataset(7, 175_700);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let m = LogisticParams::default()
            .fit(d.features.view(), d.labels(), &World::single())
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        println!(
            "fit {:.3} s (intercept {:.6})",
            t.elapsed().as_secs_f64(),
            m.intercept
        );
    }
    println!("best {best:.3} s");
}
