//! The one task a held stream keeps: small, and asleep unless something needs it.
//!
//! It waits on two things only: the socket becoming readable (a client that closes its end, or
//! sends something it should not, is noticed at once) and the stream's wake (a backlog to write,
//! an end, the control plane). Writing a backlog is the only time it touches the clock: the socket
//! must accept some bytes within `GATEWAY_WRITE_TIMEOUT`, or the client is cut as not reading.
//! When the stream ends the task releases what it held (fan-out membership, control
//! registration, stream-limit permit) and the socket closes with the last reference.

use std::sync::Arc;
use std::task::Poll;

use tokio::net::TcpStream;

use super::due;
use super::stream::{End, Held};
use crate::stream::revoked_frame;

/// Runs `held` until it ends.
pub(super) async fn run(held: Arc<Held>) {
    // A revocation or refresh may have come while the stream was being handed over.
    on_wake(&held);
    loop {
        let (ended, behind) = {
            let st = held.state();
            (st.end, Held::is_behind(&st))
        };
        if behind {
            // Boxed: a stream is seldom behind, and the task's size is fixed at its largest
            // state for its whole life.
            if !Box::pin(flush(&held)).await {
                break;
            }
            continue;
        }
        if ended.is_some() {
            break;
        }
        match wait(&held).await {
            Wake::Readable(ready) => {
                if ready.is_err() || client_left(&held.socket) {
                    let mut st = held.state();
                    held.end(&mut st, End::ClientGone, None);
                }
            }
            Wake::Woken => on_wake(&held),
        }
    }
    let keep = held.state().keep.take();
    drop(keep);
}

enum Wake {
    Readable(std::io::Result<()>),
    Woken,
}

/// Waits for the socket to be readable or the stream to be woken. Written with
/// `poll_read_ready`, which keeps its waker in the socket's own registration: the future holds
/// no waiter of its own, and every byte it saves is saved per held stream (a task's size is its
/// largest state, rounded up to 128 bytes).
async fn wait(held: &Held) -> Wake {
    let woken = held.wake.notified();
    tokio::pin!(woken);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(ready) = held.socket.poll_read_ready(cx) {
            return Poll::Ready(Wake::Readable(ready));
        }
        woken.as_mut().poll(cx).map(|()| Wake::Woken)
    })
    .await
}

/// Whether the client closed its end; anything it sends on a stream is read and ignored.
pub(super) fn client_left(socket: &TcpStream) -> bool {
    let mut scratch = [0u8; 256];
    match socket.try_read(&mut scratch) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Looks at what the control plane says: revoked (a last `gateway.revoked`), or extended by a
/// fresh token (a new end, and a new refresh offer before it).
fn on_wake(held: &Arc<Held>) {
    let mut st = held.state();
    let Some(entry) = st.keep.as_ref().and_then(|k| k.control.as_ref()).map(|r| Arc::clone(r.entry())) else { return };
    if st.end.is_some() {
        return;
    }
    if entry.is_revoked() {
        tracing::debug!("stream revoked, closing it");
        let last = revoked_frame(&entry);
        held.end(&mut st, End::Revoked, last.as_deref());
        return;
    }
    let exp = entry.exp();
    if exp != st.exp {
        st.exp = exp;
        st.expires_at = tokio::time::Instant::now() + entry.expires_in();
        st.offered = false;
        held.node.schedule.reschedule(held, due::new_deadline(&mut st));
    }
}

/// Writes the backlog until it is empty; false when the stream must stop (the client is gone
/// or stopped reading, or the stream was cut meanwhile).
async fn flush(held: &Arc<Held>) -> bool {
    // The socket must take some bytes by then; each write that does moves it.
    let mut deadline = tokio::time::Instant::now() + held.node.write_timeout;
    loop {
        {
            let mut st = held.state();
            if st.end.is_some_and(|e| !e.flushes()) {
                return false;
            }
            match held.write_backlog(&mut st) {
                Err(_) => {
                    held.end(&mut st, End::ClientGone, None);
                    return false;
                }
                Ok(_) if !Held::is_behind(&st) => return true,
                Ok(0) => {}
                Ok(_) => deadline = tokio::time::Instant::now() + held.node.write_timeout,
            }
        }
        tokio::select! {
            ready = tokio::time::timeout_at(deadline, held.socket.writable()) => match ready {
                Err(_) => {
                    tracing::warn!("client stopped reading (write timeout), closing its connection");
                    let mut st = held.state();
                    held.end(&mut st, End::WriteTimeout, None);
                    return false;
                }
                Ok(Err(_)) => return gone(held),
                Ok(Ok(())) => {}
            },
            // Cut as too slow, revoked, or shut down while the socket is full.
            () = held.wake.notified() => on_wake(held),
        }
    }
}

fn gone(held: &Held) -> bool {
    let mut st = held.state();
    held.end(&mut st, End::ClientGone, None);
    false
}
