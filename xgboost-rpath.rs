//! Build script shared by every package that links XGBoost: records the directory named by
//! `XGBOOST_LIB_DIR` as the run-time search path of the package's binaries and tests, so they
//! find `libxgboost.so` without `LD_LIBRARY_PATH`. (The Docker image installs the library in a
//! system directory instead; the extra path is then simply unused.)
fn main() {
    println!("cargo:rerun-if-env-changed=XGBOOST_LIB_DIR");
    if let Ok(dir) = std::env::var("XGBOOST_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
