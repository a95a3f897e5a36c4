//! Handlers: parse the request into domain types, call one service, map the result. No
//! rules live here, and nothing here touches storage. [`crate::router`] says which handler
//! answers which route.

pub mod account;
pub mod admin;
pub mod email;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod password;
pub mod session;
mod state;

pub use state::{Prepared, State};
