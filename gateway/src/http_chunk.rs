//! HTTP/1.1 chunked framing for the frames the lean path writes itself (`held/`): a stream's body
//! has no length, so each write is one chunk. A frame every stream of a topic shares is framed
//! once per event (`Delivery::chunk`), not once per stream.

use bytes::{Bytes, BytesMut};

/// A heartbeat (`:\n`) as one chunk.
pub(crate) const CHUNKED_HEARTBEAT: &[u8] = b"2\r\n:\n\r\n";
/// The last chunk: the body ends here.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `parts`, in order, as one chunk.
pub(crate) fn chunk(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = BytesMut::with_capacity(len + 12);
    out.extend_from_slice(format!("{len:X}\r\n").as_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chunk_is_its_length_in_hex_then_the_bytes() {
        assert_eq!(&super::chunk(&[b"data: x\n", b"\n"])[..], b"9\r\ndata: x\n\n\r\n");
        assert_eq!(&super::chunk(&[&[b'a'; 300]])[..5], b"12C\r\n");
    }
}
