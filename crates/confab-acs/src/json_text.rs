//! JSON written by hand for the hottest response, a page of messages (~20 KB for 50).
//!
//! serde_json escapes every string it writes, field names included, looking each byte up in a
//! table: a tenth of the server's time on a page of messages. Here field names are literals,
//! and a string value is scanned eight bytes at a time for what JSON must escape (`"`, `\` and
//! control characters), so the ids, times and plain text that make up most of a page are
//! copied whole. The text is byte for byte what serde_json writes (the tests compare them).

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control characters escaped the
/// way serde_json escapes them (`\b \t \n \f \r` by name, the others as `\u00xx`).
pub(crate) fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `bytes[copied..i]` is clean and not written yet.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        if let Some(escaped) = escape(byte) {
            out.extend_from_slice(&bytes[copied..i]);
            match escaped {
                Escape::Short(name) => out.extend_from_slice(&[b'\\', name]),
                Escape::Unicode => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX_DIGITS[usize::from(byte >> 4)],
                    HEX_DIGITS[usize::from(byte & 0xf)],
                ]),
            }
            copied = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Appends a decimal number as a JSON string (the wire shows ids and versions so).
pub(crate) fn push_decimal_str(out: &mut Vec<u8>, value: i64) {
    out.push(b'"');
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.push(b'"');
}

const HEX_DIGITS: [u8; 16] = *b"0123456789abcdef";

enum Escape {
    /// `\` and this letter (or the character itself, for `"` and `\`).
    Short(u8),
    /// `\u00` and two hex digits.
    Unicode,
}

fn escape(byte: u8) -> Option<Escape> {
    match byte {
        b'"' | b'\\' => Some(Escape::Short(byte)),
        0x08 => Some(Escape::Short(b'b')),
        b'\t' => Some(Escape::Short(b't')),
        b'\n' => Some(Escape::Short(b'n')),
        0x0c => Some(Escape::Short(b'f')),
        b'\r' => Some(Escape::Short(b'r')),
        0x00..=0x1f => Some(Escape::Unicode),
        _ => None,
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `word` is below 0x20, a `"` or a `\` (exact, though not
/// which one: the caller then looks at the bytes one by one).
fn needs_escape(word: u64) -> bool {
    // A byte below `n` (n <= 0x80) borrows in `byte - n` and had its high bit clear.
    let below = |n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH_BITS;
    // A byte equal to `c` is a zero byte of `word ^ c…c`.
    let equal = |c: u8| {
        let x = word ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH_BITS
    };
    (below(0x20) | equal(b'"') | equal(b'\\')) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(text: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, text);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "exactly8".into(),
            "8:acs:00000000-0000-0000-0000-000000000000_0000000000000000".into(),
            "say \"hi\"\n\u{e9}\u{1}".into(),
            "tab\there, back\\slash, bell\u{7}, del\u{7f}, slash /".into(),
            "日本語のテキストと \"引用\"".into(),
            "\u{1f600} emoji after eight bytes".into(),
        ];
        // Every ASCII byte, alone and at each offset within an eight-byte word.
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            for offset in 0..9 {
                cases.push(format!(
                    "{}{c}{}",
                    "a".repeat(offset),
                    "b".repeat(9 - offset)
                ));
            }
        }
        for case in &cases {
            assert_eq!(
                ours(case),
                serde_json::to_string(case).expect("serializes"),
                "{case:?}"
            );
        }
    }

    #[test]
    fn decimals_are_quoted() {
        for n in [0, 7, -42, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_decimal_str(&mut out, n);
            assert_eq!(out, format!("\"{n}\"").into_bytes());
        }
    }

    #[test]
    fn the_word_test_finds_each_escaped_byte_in_each_lane() {
        for lane in 0..8 {
            for byte in 0u8..=255 {
                let mut word = [b'a'; 8];
                word[lane] = byte;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    escape(byte).is_some(),
                    "byte {byte:#x} in lane {lane}"
                );
            }
        }
    }
}
