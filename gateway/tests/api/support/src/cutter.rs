//! A TCP forwarder between one gateway node and Redis that a test can cut and restore: one node
//! loses Redis while the others keep it (a partition, a dropped NAT entry).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::redis::free_port;

#[derive(Debug)]
pub struct Cutter {
    /// `redis://127.0.0.1:<port>`: what the cut node is given as its Redis.
    pub url: String,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Cutter {
    /// Forwards to the Redis at `redis_url` (`redis://host:port`).
    pub async fn start(redis_url: &str) -> Self {
        let target = redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("cutter listens");
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (o, l) = (Arc::clone(&open), Arc::clone(&links));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the node sees its connection refused at once
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().expect("links").push(link.abort_handle());
            }
        })
        .abort_handle();
        Self { url: format!("redis://127.0.0.1:{port}"), open, links, accept }
    }

    /// Drops every forwarded connection and refuses new ones until [`Cutter::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
