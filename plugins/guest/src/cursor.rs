//! Opaque page cursors.
//!
//! A cursor is `base64url(kind NUL key NUL key... CRC32)`. The kind stops a
//! cursor from one list being used on another; the checksum turns any edit
//! into a clear `INVALID_CURSOR` instead of a silently different page.
//! Cursors are positions, not secrets: a forged but well-formed cursor only
//! starts a page somewhere the caller could have paged to anyway.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::bindings::types::FieldError;
use crate::errors::Invalid;

const SEP: u8 = 0;
/// Cursors longer than this are refused before decoding.
const MAX_LEN: usize = 1024;

pub fn encode(kind: &str, keys: &[&str]) -> String {
    let mut bytes = Vec::with_capacity(kind.len() + keys.iter().map(|k| k.len() + 1).sum::<usize>() + 4);
    bytes.extend_from_slice(kind.as_bytes());
    for key in keys {
        bytes.push(SEP);
        bytes.extend_from_slice(key.as_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor made by [`encode`] with the same `kind`, returning its
/// keys. `field` names the input for the error.
pub fn decode(field: &str, kind: &str, cursor: &str) -> Result<Vec<String>, FieldError> {
    let invalid = || FieldError::invalid(field, "INVALID_CURSOR", "the cursor is not one this list returned");
    if cursor.len() > MAX_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    if bytes.len() < 4 {
        return Err(invalid());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_be_bytes() != crc {
        return Err(invalid());
    }
    let mut parts = body.split(|b| *b == SEP);
    if parts.next() != Some(kind.as_bytes()) {
        return Err(invalid());
    }
    parts.map(|p| String::from_utf8(p.to_vec()).map_err(|_| invalid())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = encode("product", &["0192a7c0-aaaa"]);
        assert_eq!(decode("after", "product", &c).unwrap(), vec!["0192a7c0-aaaa"]);
    }

    #[test]
    fn rejects_edits_kind_and_garbage() {
        let c = encode("product", &["abc"]);
        let mut edited = c.clone().into_bytes();
        edited[2] = if edited[2] == b'A' { b'B' } else { b'A' };
        assert!(decode("after", "product", std::str::from_utf8(&edited).unwrap()).is_err());
        assert!(decode("after", "category", &c).is_err());
        assert!(decode("after", "product", "!!!").is_err());
        assert!(decode("after", "product", "").is_err());
    }
}
