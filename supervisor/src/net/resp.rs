//! Reading RESP commands, for the stand-in servers of the tests and benchmarks.

/// The length of the first complete command in `buf` (a RESP array of bulk strings, as the
/// `redis` crate sends every command), if it is complete.
pub(crate) fn command_len(buf: &[u8]) -> Option<usize> {
    let (count, mut at) = header(buf, 0, b'*')?;
    for _ in 0..count {
        let (len, body) = header(buf, at, b'$')?;
        at = body + len + 2;
        if buf.len() < at {
            return None;
        }
    }
    Some(at)
}

/// A `<kind><number>\r\n` line at `at`: the number and where the line ends.
fn header(buf: &[u8], at: usize, kind: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != kind {
        return None;
    }
    let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
    Some((n, end + 2))
}
