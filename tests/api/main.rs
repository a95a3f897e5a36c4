//! Black-box tests: each starts the real app on port 0 with its own state and talks to it
//! over HTTP, the way a client would. Most run twice: on the embedded default and on
//! PostgreSQL + Redis (see `both!`); `support` has what they stand on.

#[macro_use]
mod support;

mod accounts;
mod admin;
mod clients;
mod connections;
mod contract;
mod email;
mod faults;
mod gateway;
mod health;
mod http_rules;
mod keys;
mod login;
mod logout;
mod openapi;
mod operations;
mod operator;
mod password;
mod persistence;
mod refresh;
mod register;
mod resend;
mod rotation;
mod scale;
mod sessions;
mod startup;
mod tls;
mod verify;
