fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let t = std::time::Instant::now();
    let m = common::artifact::Manifest::load(&dir).unwrap();
    let e = common::models::ensemble::FireEnsemble::load(&dir, &m).unwrap();
    println!("load {:?}", t.elapsed());
    let x = ndarray::Array2::<f32>::from_elem((1, 18), 30.0);
    let t = std::time::Instant::now();
    let n = 2000;
    for _ in 0..n { e.predict(x.view()).unwrap(); }
    println!("single row predict {:?}", t.elapsed() / n);
    let x = ndarray::Array2::<f32>::from_elem((10000, 18), 30.0);
    let t = std::time::Instant::now();
    e.predict(x.view()).unwrap();
    println!("10000 rows {:?}", t.elapsed());
}
