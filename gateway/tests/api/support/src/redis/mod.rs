//! A real Redis for the tests: `REDIS_URL` if set (each test then isolates itself with its own key
//! prefix), else a `redis-server` from PATH started on a free loopback port for the test and
//! killed with it, else a `redis:7` container (testcontainers) when a Docker engine answers.
//! Without any of them the test fails and says what it needs. Tests that stop and restart the
//! server, and the Sentinel and Cluster set-ups, need `redis-server` (and `redis-cli`) on PATH.

mod cluster;
mod nodes;
mod process;
mod sentinel;
mod shape;
mod standalone;
mod tls;

pub use crate::on_every_shape;
pub use cluster::TestCluster;
pub use nodes::{
    Nodes, redis_client, redis_client_at, spawn_node, spawn_node_at, spawn_node_with, stream_key, three_nodes, three_nodes_with,
};
pub use process::{free_port, redis_cli, until_stream_holds};
pub use sentinel::TestSentinel;
pub use shape::{Shape, Store};
pub use standalone::{TestRedis, unique_prefix};
pub use tls::TestTlsRedis;
