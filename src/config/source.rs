//! Reading variables: where they come from ([`Source`]), and a [`Reader`] that parses each
//! one and collects every problem, so an operator fixes them all in one go.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Where configuration values come from.
pub trait Source {
    /// The value of `key`, or `None` when it is unset. Empty values count as unset.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).filter(|v| !v.is_empty()).cloned()
    }
}

/// One bad variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
}

/// Every bad variable found, reported together in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The longest duration any variable may hold (SPEC §6: no value may make a request panic,
/// wrap, or poison a store with a date it cannot hold).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Reads variables one by one, collecting problems.
pub struct Reader<'a> {
    source: &'a dyn Source,
    pub(super) problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub fn new(source: &'a dyn Source) -> Reader<'a> {
        Reader {
            source,
            problems: Vec::new(),
        }
    }

    pub fn fail(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable,
            message: message.into(),
        });
    }

    /// Reads `key` with `parse`, falling back to `default` when unset or invalid
    /// (an invalid value is recorded as a problem, so the fallback is never used for real).
    pub fn parse<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.source.get(key) {
            None => default,
            Some(raw) => match parse(raw.trim()) {
                Ok(v) => v,
                Err(msg) => {
                    self.fail(key, msg);
                    default
                }
            },
        }
    }

    /// A value that needs no parsing; `None` when unset.
    pub fn string(&mut self, key: &'static str) -> Option<String> {
        self.source.get(key).map(|v| v.trim().to_string())
    }

    /// A comma-separated list, each item parsed; empty when unset.
    pub fn list<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        self.parse(key, Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(&parse)
                .collect()
        })
    }

    /// A duration of at most [`MAX_DURATION`].
    pub fn duration(&mut self, key: &'static str, default: Duration) -> Duration {
        self.parse(key, default, |raw| {
            let d = parse_duration(raw)?;
            if d > MAX_DURATION {
                return Err(format!("must be at most 10 years, got {raw:?}"));
            }
            Ok(d)
        })
    }

    /// A duration between 1 ms and `max` (for timeouts that servers take in milliseconds).
    pub fn timeout(&mut self, key: &'static str, default: Duration, max: Duration) -> Duration {
        let d = self.positive_duration(key, default);
        if d > max {
            self.fail(key, format!("must be at most {}s", max.as_secs()));
        }
        d
    }

    /// A duration that must not be zero.
    pub fn positive_duration(&mut self, key: &'static str, default: Duration) -> Duration {
        let d = self.duration(key, default);
        if d.is_zero() {
            self.fail(key, "must be longer than 0s");
        }
        d
    }

    pub fn flag(&mut self, key: &'static str, default: bool) -> bool {
        self.parse(key, default, |v| match v {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("must be true or false, got {v:?}")),
        })
    }

    /// A whole number within `range` (inclusive).
    pub fn number<T>(&mut self, key: &'static str, default: T, range: (T, T)) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.parse(key, default, |raw| {
            let v: T = raw
                .parse()
                .map_err(|_| format!("must be a whole number, got {raw:?}"))?;
            if v < range.0 || v > range.1 {
                return Err(format!(
                    "must be between {} and {}, got {v}",
                    range.0, range.1
                ));
            }
            Ok(v)
        })
    }
}

/// Parses `30m`, `15d`, `4h`, `90s`, `0s` or a plain number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let bad =
        || format!("must be a duration such as 90s, 30m, 4h, 15d or plain seconds, got {raw:?}");
    let (digits, unit) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&raw[..i], c),
        Some(_) => (raw, 's'),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_suffixes_and_plain_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(14_400)));
        assert_eq!(parse_duration("15d"), Ok(Duration::from_secs(1_296_000)));
        for bad in [
            "",
            "m",
            "-5s",
            "1.5h",
            "10x",
            "1h30m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        let env: HashMap<String, String> = [("D".to_string(), "3651d".to_string())].into();
        let mut r = Reader::new(&env);
        r.duration("D", Duration::ZERO);
        assert_eq!(r.problems.len(), 1);
        let env: HashMap<String, String> = [("D".to_string(), "3650d".to_string())].into();
        let mut r = Reader::new(&env);
        assert_eq!(r.duration("D", Duration::ZERO), MAX_DURATION);
        assert!(r.problems.is_empty());
        r.timeout("D", Duration::ZERO, Duration::from_secs(3600));
        assert_eq!(r.problems.len(), 1, "a timeout has its own, lower bound");
    }
}
