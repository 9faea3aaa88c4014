//! `serve`: SageMaker's hosting entry point (`docker run IMAGE serve`), plus `serve transform`
//! (a local stand-in for batch transform) and `serve auto` (the image's default command).

use common::opt_ml::OptMl;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("transform") {
        return ExitCode::from(serve::transform::main(&args[1..]) as u8);
    }
    common::memory::pin_mmap_threshold();
    common::init_logging();
    // The image's default command; SageMaker itself passes `serve` (anything else is ignored).
    if args.first().map(String::as_str) == Some("auto") {
        if let Err(e) = serve::start::train_if_training_job(&OptMl::from_env()) {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    }
    // From here on this process serves: a stop request is kept until the server can act on it.
    serve::signals::hold();
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
    let served = runtime.block_on(serve::run(config, OptMl::from_env()));
    // A prediction still computing after the drain window must not hold the exit.
    runtime.shutdown_background();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("serve failed: {e}");
            ExitCode::FAILURE
        }
    }
}
