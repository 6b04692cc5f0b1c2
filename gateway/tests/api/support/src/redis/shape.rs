//! The same test on a standalone Redis and on a Redis Cluster.

use super::cluster::TestCluster;
use super::standalone::TestRedis;

/// The Redis shapes the same tests run on (`redis.rs`, `expiry.rs`).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Standalone,
    Cluster,
}

/// A Redis of either shape.
#[derive(Debug)]
pub enum Store {
    Standalone(TestRedis),
    Cluster(TestCluster),
}

impl Store {
    pub async fn start(shape: Shape) -> Self {
        match shape {
            Shape::Standalone => Self::Standalone(TestRedis::start().await),
            Shape::Cluster => Self::Cluster(TestCluster::start().await),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Standalone(r) => &r.url,
            Self::Cluster(c) => &c.url,
        }
    }
}

/// Runs a test, written once as `async fn name(shape: Shape)`, on a standalone Redis and on a
/// three-master Redis Cluster: `name::standalone` and `name::cluster`.
#[macro_export]
macro_rules! on_every_shape {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn standalone() {
                super::$name($crate::redis::Shape::Standalone).await
            }
            #[tokio::test]
            async fn cluster() {
                super::$name($crate::redis::Shape::Cluster).await
            }
        }
    )*};
}
