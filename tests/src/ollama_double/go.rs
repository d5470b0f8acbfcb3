//! What Ollama's Go standard library says about bad input, word for word: `encoding/json`'s
//! syntax errors (as `json.Decoder` reports them: only the first value counts, trailing bytes
//! are ignored) and `time.ParseDuration`'s errors (for `keep_alive`).

/// Go's `quoteChar`: how a JSON syntax error shows the offending byte.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x07 => r"'\a'".into(),
        0x08 => r"'\b'".into(),
        0x0c => r"'\f'".into(),
        b'\n' => r"'\n'".into(),
        b'\r' => r"'\r'".into(),
        b'\t' => r"'\t'".into(),
        0x0b => r"'\v'".into(),
        b'\\' => r"'\\'".into(),
        c if c < 0x20 || c == 0x7f => format!(r"'\x{c:02x}'"),
        // Go turns the byte into the rune of the same number.
        c if (0x80..0xa0).contains(&c) => format!(r"'\u{c:04x}'"),
        c => format!("'{}'", char::from(c)),
    }
}

/// A recursive-descent mirror of Go's JSON scanner, for its error texts.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

type Scan = Result<(), String>;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, String> {
        let c = self.peek().ok_or_else(|| "unexpected EOF".to_string())?;
        self.at += 1;
        Ok(c)
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn fail(c: u8, context: &str) -> Scan {
        Err(format!("invalid character {} {context}", quote_char(c)))
    }

    fn value(&mut self) -> Scan {
        self.skip_space();
        match self.next()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b't' => self.literal(b"rue", "true"),
            b'f' => self.literal(b"alse", "false"),
            b'n' => self.literal(b"ull", "null"),
            c @ (b'-' | b'0'..=b'9') => self.number(c),
            c => Self::fail(c, "looking for beginning of value"),
        }
    }

    fn nested(&mut self) -> Scan {
        // Go's scanner refuses nesting deeper than 10000.
        self.depth += 1;
        if self.depth > 10_000 {
            return Err("exceeded max depth".into());
        }
        Ok(())
    }

    fn object(&mut self) -> Scan {
        self.nested()?;
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            match self.next()? {
                b'"' => self.string()?,
                c => return Self::fail(c, "looking for beginning of object key string"),
            }
            self.skip_space();
            match self.next()? {
                b':' => {}
                c => return Self::fail(c, "after object key"),
            }
            self.value()?;
            self.skip_space();
            match self.next()? {
                b',' => self.skip_space(),
                b'}' => {
                    self.depth -= 1;
                    return Ok(());
                }
                c => return Self::fail(c, "after object key:value pair"),
            }
        }
    }

    fn array(&mut self) -> Scan {
        self.nested()?;
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.skip_space();
            match self.next()? {
                b',' => {}
                b']' => {
                    self.depth -= 1;
                    return Ok(());
                }
                c => return Self::fail(c, "after array element"),
            }
        }
    }

    fn string(&mut self) -> Scan {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next()?;
                            if !c.is_ascii_hexdigit() {
                                return Self::fail(c, r"in \u hexadecimal character escape");
                            }
                        }
                    }
                    c => return Self::fail(c, "in string escape code"),
                },
                c if c < 0x20 => return Self::fail(c, "in string literal"),
                _ => {}
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn number(&mut self, first: u8) -> Scan {
        let first = if first == b'-' {
            match self.next()? {
                c @ b'0'..=b'9' => c,
                c => return Self::fail(c, "in numeric literal"),
            }
        } else {
            first
        };
        if first != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            match self.next()? {
                b'0'..=b'9' => self.digits(),
                c => return Self::fail(c, "after decimal point in numeric literal"),
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            match self.next()? {
                b'0'..=b'9' => self.digits(),
                c => return Self::fail(c, "in exponent of numeric literal"),
            }
        }
        Ok(())
    }

    fn literal(&mut self, rest: &[u8], word: &str) -> Scan {
        for &want in rest {
            let c = self.next()?;
            if c != want {
                return Self::fail(
                    c,
                    &format!("in literal {word} (expecting {})", quote_char(want)),
                );
            }
        }
        Ok(())
    }
}

/// Why `json.Decoder.Decode` would refuse this body, as gin's `ShouldBindJSON` reports it:
/// nothing but whitespace is `io.EOF` ("missing request body" in Ollama's handlers), a value cut
/// short is "unexpected EOF", anything else names the offending character.
pub(super) fn json_syntax(raw: &[u8]) -> Result<(), String> {
    if raw
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Err("missing request body".into());
    }
    Scanner {
        bytes: raw,
        at: 0,
        depth: 0,
    }
    .value()
}

/// The first JSON value of `raw` (a `json.Decoder` ignores what follows it), or Go's error.
pub(super) fn decode(raw: &[u8]) -> Result<serde_json::Value, String> {
    json_syntax(raw)?;
    serde_json::Deserializer::from_slice(raw)
        .into_iter::<serde_json::Value>()
        .next()
        .unwrap_or(Ok(serde_json::Value::Null))
        // Go accepts what serde_json may not (numbers beyond f64, say): report it plainly.
        .map_err(|e| format!("json: {e}"))
}

/// Go's `time.ParseDuration`, in nanoseconds (saturating), with its error texts.
pub fn parse_duration(original: &str) -> Result<i128, String> {
    let quoted = format!("{original:?}");
    let invalid = || format!("time: invalid duration {quoted}");
    let mut s = original;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        if !(s.starts_with('.') || s.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(invalid());
        }
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_part = &s[..int_end];
        s = &s[int_end..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            frac_part = &rest[..end];
            s = &rest[end..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            // "." or ".s": no digits at all.
            return Err(invalid());
        }
        let unit_end = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        s = &s[unit_end..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {quoted}"));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {quoted}")),
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.saturating_mul(scale);
        let mut place = scale;
        for d in frac_part.bytes() {
            place /= 10;
            value += i128::from(d - b'0') * place;
        }
        total = total.saturating_add(value);
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_read_like_go() {
        let cases = [
            (
                r#"{"model": "x", "messages": [}"#,
                "invalid character '}' looking for beginning of value",
            ),
            (
                "{not json",
                "invalid character 'n' looking for beginning of object key string",
            ),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            (r#"{"a" 1}"#, "invalid character '1' after object key"),
            (
                r#"{"a":1 "b":2}"#,
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "tru ",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            (
                "{\"a\":\"\u{1}\"}",
                r"invalid character '\x01' in string literal",
            ),
            (r#"{"model":"#, "unexpected EOF"),
            ("  \n", "missing request body"),
            ("", "missing request body"),
            ("[-x]", "invalid character 'x' in numeric literal"),
            (
                "[1.]",
                "invalid character ']' after decimal point in numeric literal",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                json_syntax(body.as_bytes()),
                Err(want.to_string()),
                "{body}"
            );
        }
        json_syntax(br#"{"a": [1, -2.5e3, true, null, "x\u00e9\n"]} trailing"#).expect("valid");
        assert_eq!(
            decode(br#"{"a": 1} {"b": 2}"#).expect("first value"),
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(
            parse_duration("-1"),
            Err(r#"time: missing unit in duration "-1""#.into())
        );
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-0"), Ok(0));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(
            parse_duration("forever"),
            Err(r#"time: invalid duration "forever""#.into())
        );
        assert_eq!(
            parse_duration("300"),
            Err(r#"time: missing unit in duration "300""#.into())
        );
        assert_eq!(
            parse_duration("5 minutes"),
            Err(r#"time: unknown unit " minutes" in duration "5 minutes""#.into())
        );
        assert_eq!(
            parse_duration(""),
            Err(r#"time: invalid duration """#.into())
        );
    }
}
