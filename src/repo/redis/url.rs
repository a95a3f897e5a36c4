//! `REDIS_URL`, parsed once into the connection settings of each node.

use redis::{ConnectionInfo, IntoConnectionInfo as _};

/// One Redis URL (`rediss://` for TLS), or several comma-separated nodes of a Redis
/// Cluster, parsed. The redis crate's own Debug redacts passwords.
#[derive(Debug, Clone)]
pub struct RedisUrl {
    nodes: Vec<ConnectionInfo>,
    cluster: bool,
}

impl RedisUrl {
    /// `cluster` forces cluster mode for a single seed node. The message names what is
    /// wrong, never the password.
    pub fn parse(raw: &str, cluster: bool) -> Result<RedisUrl, String> {
        let mut nodes = Vec::new();
        for node in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                return Err("must start with redis:// or rediss:// (TLS)".into());
            }
            // The redis crate skips certificate checks for `#insecure`; authd never does.
            if node.contains('#') {
                return Err(
                    "must not have a #fragment (authd always verifies TLS certificates)".into(),
                );
            }
            let info = node
                .into_connection_info()
                .map_err(|e| format!("is not a valid Redis URL ({e})"))?;
            nodes.push(info);
        }
        if nodes.is_empty() {
            return Err("names no Redis node".into());
        }
        Ok(RedisUrl {
            cluster: cluster || nodes.len() > 1,
            nodes,
        })
    }

    pub fn nodes(&self) -> &[ConnectionInfo] {
        &self.nodes
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_parsed_and_passwords_never_printed() {
        let url = RedisUrl::parse("redis://:s3cret@cache.example:6379/0", false).unwrap();
        assert!(!url.is_cluster());
        assert!(!format!("{url:?}").contains("s3cret"));
        let cluster = RedisUrl::parse("redis://a:7000, redis://b:7001", false).unwrap();
        assert!(cluster.is_cluster() && cluster.nodes().len() == 2);
        assert!(RedisUrl::parse("redis://a:7000", true)
            .unwrap()
            .is_cluster());
        for bad in ["http://x", "redis://x#insecure", " , "] {
            assert!(RedisUrl::parse(bad, false).is_err(), "{bad}");
        }
    }
}
