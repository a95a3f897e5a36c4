//! What `/readyz` checks.

use async_trait::async_trait;

use super::RepoError;

#[async_trait]
pub trait Dependency: Send + Sync {
    /// A short name for `/readyz`: `postgres`, `redis`, `database`, `cache`.
    fn name(&self) -> &'static str;
    async fn ping(&self) -> Result<(), RepoError>;
}
