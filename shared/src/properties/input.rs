//! How a property reads structured values off the fuzzer's bytes: the one piece every target
//! shares, in a file of its own so that the targets and their parent do not import each other.

/// Structured values read off the fuzzer's bytes. Missing bytes read as zeros, so every input
/// means something; text fields end at `0xFF`, a byte that never occurs in UTF-8.
pub(super) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(super) fn byte(&mut self) -> u8 {
        let (first, rest) = self.rest.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.rest = rest;
        first
    }

    pub(super) fn u64(&mut self) -> u64 {
        let n = self.rest.len().min(8);
        let mut le = [0u8; 8];
        le[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        u64::from_le_bytes(le)
    }

    /// Bytes up to the next `0xFF` (consumed, not returned) or the end.
    pub(super) fn field(&mut self) -> &'a [u8] {
        let end = self.rest.iter().position(|&b| b == 0xFF).unwrap_or(self.rest.len());
        let field = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or_default();
        field
    }

    /// A field as text (invalid UTF-8 replaced, as a server reading bytes would).
    pub(super) fn text(&mut self) -> String {
        String::from_utf8_lossy(self.field()).into_owned()
    }

    pub(super) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reads_fields_and_pads_with_zeros() {
        let mut input = Input::new(b"\x01\x02ab\xFFc");
        assert_eq!(input.byte(), 1);
        assert_eq!(input.field(), b"\x02ab");
        assert_eq!(input.text(), "c");
        assert!(input.is_empty());
        assert_eq!((input.byte(), input.u64(), input.field()), (0, 0, &b""[..]));
    }
}
