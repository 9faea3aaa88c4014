//! `serve`: SageMaker's hosting entry point (`docker run IMAGE serve`), plus `serve transform`
//! (a local stand-in for batch transform).

use common::opt_ml::OptMl;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("transform") {
        return ExitCode::from(serve::transform::main(&args[1..]) as u8);
    }
    // SageMaker passes `serve` as the only argument; anything else is ignored.
    common::memory::pin_mmap_threshold();
    common::init_logging();
    let config = serve::config::ServeConfig::from_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::run(config, OptMl::from_env())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("serve failed: {e}");
            ExitCode::FAILURE
        }
    }
}
