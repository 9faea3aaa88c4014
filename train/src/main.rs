//! `train`: SageMaker's training entry point (`docker run IMAGE train`), plus `train datagen`.

use common::opt_ml::OptMl;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("datagen") {
        return ExitCode::from(train::datagen_cli::main(&args[1..]) as u8);
    }
    // SageMaker passes `train` as the only argument; anything else is ignored, as the contract asks.
    common::memory::pin_mmap_threshold();
    common::init_logging();
    let opt_ml = OptMl::from_env();
    train::outcome::install_panic_hook(&opt_ml);
    let outcome = train::stop::StopFlag::install()
        .map_err(|e| common::Error::Fit(format!("cannot install the SIGTERM handler: {e}")))
        .and_then(|stop| train::run(&opt_ml, &stop));
    match outcome {
        Ok(_) => {
            if let Err(e) = train::outcome::write_success(&opt_ml) {
                tracing::warn!(error = %e, "cannot write output/success");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            train::outcome::write_failure(&opt_ml, &e.to_string());
            ExitCode::FAILURE
        }
    }
}
