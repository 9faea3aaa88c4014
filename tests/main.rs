//! The end-to-end test binary (one binary keeps link time down on small machines).

mod serve_e2e;
mod train_e2e;
mod train_failures;
