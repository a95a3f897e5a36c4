//! The operator's subcommands: `authd keygen`, `authd admin-token`, `authd --help`.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

use authd::{App, Config};

use crate::support::{base_config, Scratch};

fn authd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authd"))
        .env_clear()
        .args(args)
        .output()
        .unwrap()
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn keygen_writes_a_private_signing_key_authd_starts_with_and_never_overwrites_one() {
    let dir = Scratch::new();
    let key = dir.path("signing.pem");
    let made = authd(&["keygen", &key]);
    assert!(made.status.success(), "{made:?}");
    assert_eq!(mode(&key), 0o600);
    let first = std::fs::read_to_string(&key).unwrap();
    assert!(
        first.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{first}"
    );

    let mut env = base_config();
    env.insert("AUTH_SIGNING_KEY".into(), key.clone());
    let app = App::build(Config::load(&env).unwrap()).await.unwrap();
    drop(app);

    let again = authd(&["keygen", &key]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains(&key), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        first,
        "left as it was"
    );

    // Without a path, the key goes to stdout; each one is new.
    let printed = authd(&["keygen"]);
    assert!(printed.status.success());
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_ne!(printed, first);
}

#[test]
fn admin_token_writes_a_long_random_private_secret() {
    let dir = Scratch::new();
    let path = dir.path("admin-token");
    assert!(authd(&["admin-token", &path]).status.success());
    assert_eq!(mode(&path), 0o600);
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(secret.trim().len() >= 32, "{secret}");
    assert!(!authd(&["admin-token", &path]).status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
    let other = String::from_utf8(authd(&["admin-token"]).stdout).unwrap();
    assert!(other.trim().len() >= 32);
    assert_ne!(other, secret);
}

#[test]
fn help_lists_every_subcommand_and_a_wrong_one_is_refused() {
    let help = authd(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for command in [
        "authd migrate",
        "authd keygen",
        "authd admin-token",
        "--version",
    ] {
        assert!(text.contains(command), "{text}");
    }
    let wrong = authd(&["keygen", "a", "b"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("usage"));
}
