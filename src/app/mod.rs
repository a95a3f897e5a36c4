//! Wiring: [`App::build`] turns a [`Config`](crate::Config) into a bound listener with every
//! service ready; [`App::run`] (in `serve.rs`) serves until the shutdown future completes. `main`,
//! the tests and the bench all start authd this way.

mod build;
mod connections;
mod housekeeping;
mod serve;

pub use build::{App, Overrides, StartError};
