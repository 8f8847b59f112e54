//! Relaxed JSON, as real Kaizala clients and the Kaizala docs send it: unquoted keys, single
//! quoted strings, trailing commas and comments are accepted, and property names are matched
//! case-insensitively (every object key is lower-cased; the request structs name their fields
//! in lower case).
//!
//! Hand-written (about 250 lines) rather than a JSON5 crate: it needs no grammar engine, lowers
//! keys while parsing, and bounds nesting so that no input can exhaust the stack.

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted.
const MAX_DEPTH: usize = 64;

/// Parses relaxed JSON; every object key is lower-cased (the last of duplicate keys wins).
pub fn parse_relaxed(text: &str) -> Result<Value, String> {
    let mut parser = Parser {
        chars: text.char_indices().peekable(),
        text,
        depth: 0,
    };
    parser.skip_blank()?;
    let value = parser.value()?;
    parser.skip_blank()?;
    match parser.chars.peek() {
        None => Ok(value),
        Some(&(at, c)) => Err(format!("unexpected '{c}' after the value at offset {at}")),
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.text.len(), |&(at, _)| at)
    }

    fn error<T>(&mut self, what: &str) -> Result<T, String> {
        let at = self.offset();
        Err(format!("{what} at offset {at}"))
    }

    /// Skips whitespace and `//` / `/* */` comments.
    fn skip_blank(&mut self) -> Result<(), String> {
        loop {
            match self.chars.peek() {
                Some(&(_, c)) if c.is_whitespace() || c == '\u{feff}' => {
                    self.chars.next();
                }
                Some(&(_, '/')) => {
                    self.chars.next();
                    match self.chars.next() {
                        Some((_, '/')) => {
                            for (_, c) in self.chars.by_ref() {
                                if c == '\n' {
                                    break;
                                }
                            }
                        }
                        Some((_, '*')) => {
                            let mut star = false;
                            loop {
                                match self.chars.next() {
                                    Some((_, '/')) if star => break,
                                    Some((_, c)) => star = c == '*',
                                    None => return self.error("unterminated comment"),
                                }
                            }
                        }
                        _ => return self.error("unexpected '/'"),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.chars.peek().map(|&(_, c)| c) {
            Some('{') => self.nested(Self::object),
            Some('[') => self.nested(Self::array),
            Some(quote @ ('"' | '\'')) => {
                self.chars.next();
                self.string(quote).map(Value::String)
            }
            Some(c) if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
            Some(c) if is_word_char(c) => {
                let word = self.word();
                match word.to_ascii_lowercase().as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(format!("unexpected word '{word}'")),
                }
            }
            Some(c) => self.error(&format!("unexpected '{c}'")),
            None => self.error("unexpected end of input"),
        }
    }

    fn nested(&mut self, parse: fn(&mut Self) -> Result<Value, String>) -> Result<Value, String> {
        if self.depth >= MAX_DEPTH {
            return self.error(&format!("nesting deeper than {MAX_DEPTH}"));
        }
        self.depth += 1;
        self.chars.next(); // the opening bracket
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Result<Value, String> {
        let mut map = Map::new();
        loop {
            self.skip_blank()?;
            let key = match self.chars.peek().map(|&(_, c)| c) {
                Some('}') => {
                    self.chars.next();
                    return Ok(Value::Object(map));
                }
                Some(quote @ ('"' | '\'')) => {
                    self.chars.next();
                    self.string(quote)?
                }
                Some(c) if is_word_char(c) => self.word(),
                Some(c) => return self.error(&format!("expected a property name, found '{c}'")),
                None => return self.error("unterminated object"),
            };
            self.skip_blank()?;
            match self.chars.next() {
                Some((_, ':')) => {}
                _ => return self.error(&format!("expected ':' after '{key}'")),
            }
            self.skip_blank()?;
            let value = self.value()?;
            map.insert(key.to_lowercase(), value);
            self.skip_blank()?;
            match self.chars.next() {
                Some((_, ',')) => {}
                Some((_, '}')) => return Ok(Value::Object(map)),
                _ => return self.error("expected ',' or '}'"),
            }
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            if let Some(&(_, ']')) = self.chars.peek() {
                self.chars.next();
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_blank()?;
            match self.chars.next() {
                Some((_, ',')) => {}
                Some((_, ']')) => return Ok(Value::Array(items)),
                _ => return self.error("expected ',' or ']'"),
            }
        }
    }

    /// The rest of a string opened by `quote`.
    fn string(&mut self, quote: char) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return self.error("unterminated string"),
                Some((_, c)) if c == quote => {
                    // Text with a NUL character could not be kept by every store.
                    if out.contains('\0') {
                        return self.error("a NUL character (\\u0000) in a string");
                    }
                    return Ok(out);
                }
                Some((_, '\\')) => match self.chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 'b')) => out.push('\u{8}'),
                    Some((_, 'f')) => out.push('\u{c}'),
                    Some((_, '0')) => out.push('\0'),
                    Some((_, 'u')) => {
                        let c = self.unicode_escape()?;
                        out.push(c);
                    }
                    // A line continuation.
                    Some((_, '\n')) => {}
                    // `\"`, `\'`, `\\`, `\/` and any other escaped character stand for themselves.
                    Some((_, c)) => out.push(c),
                    None => return self.error("unterminated string"),
                },
                Some((_, c)) => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0;
        for _ in 0..4 {
            match self.chars.next().and_then(|(_, c)| c.to_digit(16)) {
                Some(d) => code = code * 16 + d,
                None => return self.error("bad \\u escape"),
            }
        }
        Ok(code)
    }

    /// A `\uXXXX` escape (the `\u` read), joining surrogate pairs; a lone surrogate becomes
    /// U+FFFD.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        if (0xD800..0xDC00).contains(&high) {
            let mut ahead = self.chars.clone();
            if let (Some((_, '\\')), Some((_, 'u'))) = (ahead.next(), ahead.next()) {
                self.chars.next();
                self.chars.next();
                let low = self.hex4()?;
                if (0xDC00..0xE000).contains(&low) {
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return Ok(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                return Ok('\u{fffd}');
            }
        }
        Ok(char::from_u32(high).unwrap_or('\u{fffd}'))
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(&(_, c)) = self.chars.peek() {
            if !is_word_char(c) {
                break;
            }
            word.push(c);
            self.chars.next();
        }
        word
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.offset();
        while let Some(&(_, c)) = self.chars.peek() {
            if c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E') {
                self.chars.next();
            } else {
                break;
            }
        }
        let end = self.offset();
        let text = &self.text[start..end];
        let text = text.strip_prefix('+').unwrap_or(text);
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Value::Number(n.into()));
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(format!("bad number '{text}' at offset {start}")),
        }
    }
}

/// What an unquoted property name (or a literal) may consist of.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_character_in_a_string_is_an_error() {
        for text in [r#"{a: "x\u0000"}"#, r#"{a: 'x\0'}"#, "{\"a\u{0}\": 1}"] {
            assert!(parse_relaxed(text).is_err(), "{text}");
        }
        assert!(parse_relaxed(r#"{a: "\\u0000"}"#).is_ok());
    }

    #[test]
    fn strict_json_parses_with_lowercase_keys() {
        let v = parse_relaxed(
            r#"{"Message": "hi \"there\" \u00e9\ud83d\ude00", "n": [1, -2.5, true, null]}"#,
        )
        .expect("parse");
        assert_eq!(
            v,
            json!({"message": "hi \"there\" é😀", "n": [1, -2.5, true, null]})
        );
    }

    #[test]
    fn relaxed_forms_parse() {
        let v = parse_relaxed(
            "{name:\"Kaizala Test group\", welcomeMessage:'It''s', members:['+911099999999',],
              // a comment
              groupType: 'Group', /* another */ pin: 8876, Flag: True, }",
        );
        assert!(v.is_err(), "'It''s' is two strings");
        let v = parse_relaxed(
            "{name:\"Kaizala Test group\", welcomeMessage:'It\\'s \"ok\"', members:['+911099999999',],
              // a comment
              groupType: 'Group', /* another */ pin: 8876, Flag: True, big: 18446744073709551615 }",
        )
        .expect("parse");
        assert_eq!(
            v,
            json!({
                "name": "Kaizala Test group",
                "welcomemessage": "It's \"ok\"",
                "members": ["+911099999999"],
                "grouptype": "Group",
                "pin": 8876,
                "flag": true,
                "big": 18446744073709551615u64,
            })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{",
            "}",
            "{a}",
            "{a:}",
            "{a:1",
            "{a:1,,}",
            "[1 2]",
            "{'a\":1}",
            "{a:'x",
            "nul",
            "{a:1} x",
            "/",
            "/* open",
            "{a:\"\\u12\"}",
            "{a:1e999999}",
            "{a: --}",
            "\"\\",
        ] {
            assert!(parse_relaxed(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(parse_relaxed(&deep).is_err());
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_relaxed(&ok).is_ok());
    }
}
