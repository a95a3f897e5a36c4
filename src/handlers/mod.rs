//! Handlers: parse the request into domain types, call a service, map the result.
//! Rules live in the services; nothing here touches storage directly.

pub mod account;
pub mod health;
pub mod keys;
pub mod password;
pub mod session;
