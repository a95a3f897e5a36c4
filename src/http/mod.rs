//! HTTP plumbing every handler shares, with no knowledge of routes or services' state:
//! request bodies ([`body`]), problem responses ([`problem`], the one place errors become
//! responses), CORS ([`cors`]), request ids ([`request_id`]), bearer credentials
//! ([`bearer`]), who the client is ([`client`]), the admin API's secret ([`admin_secret`]).

pub mod admin_secret;
pub mod bearer;
pub mod body;
pub mod client;
pub mod cors;
pub mod problem;
pub mod request_id;

pub use body::{Body, Response};
pub use problem::Problem;
