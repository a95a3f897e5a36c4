//! Black-box tests: each starts the real app on port 0 with its own in-memory state and
//! talks to it over HTTP, the way a client would.

mod helpers;

mod health;
mod http_rules;
mod keys;
mod login;
mod logout;
mod refresh;
mod register;
mod resend;
mod startup;
mod verify;
