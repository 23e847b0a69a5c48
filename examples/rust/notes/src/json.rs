//! Just enough JSON, worded as the C example words it: read `{"text": "..."}`,
//! write a string literal.

/// `s` as a JSON string literal: `"` and `\` escaped, `\n`, `\r`, `\t`, other
/// control characters as `\u00XX`, everything else as it is.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    let mut at = max.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    s
}

struct Json<'a> {
    b: &'a [u8],
    at: usize,
}

type Res<T> = Result<T, &'static str>;

impl Json<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.at..self.at + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        h.iter().all(u8::is_ascii_hexdigit).then_some(())?;
        self.at += 4;
        Some(v)
    }

    /// A string; its bytes appended to `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Res<()> {
        if self.peek() != Some(b'"') {
            return Err("expected a string");
        }
        self.at += 1;
        while let Some(c) = self.peek().filter(|&c| c != b'"') {
            self.at += 1;
            if c < 0x20 {
                return Err("a control character in a string");
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else { break };
            self.at += 1;
            match e {
                b'"' | b'\\' | b'/' => out.push(e),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let mut cp = self.hex4().ok_or("a bad \\u escape")?;
                    if (0xd800..0xdc00).contains(&cp)
                        && self.b.len() - self.at >= 6
                        && self.b[self.at..].starts_with(b"\\u")
                    {
                        self.at += 2;
                        let lo = self
                            .hex4()
                            .filter(|lo| (0xdc00..=0xdfff).contains(lo))
                            .ok_or("a bad surrogate pair")?;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    } else if (0xd800..0xe000).contains(&cp) {
                        return Err("a lone surrogate");
                    }
                    let ch = char::from_u32(cp).ok_or("a bad \\u escape")?;
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => return Err("a bad escape"),
            }
        }
        if self.peek().is_none() {
            return Err("an unterminated string");
        }
        self.at += 1;
        Ok(())
    }

    /// Skips any value (nesting limited).
    fn value(&mut self, depth: u32) -> Res<()> {
        self.ws();
        if depth > 32 {
            return Err("nested too deeply");
        }
        let c = self.peek().ok_or("unexpected end")?;
        match c {
            b'"' => self.string(&mut Vec::new()),
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    if c == b'{' {
                        self.ws();
                        self.string(&mut Vec::new())?;
                        self.ws();
                        if self.peek() != Some(b':') {
                            if self.peek().is_some() {
                                self.at += 1;
                            }
                            return Err("expected :");
                        }
                        self.at += 1;
                    }
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(x) if x == close => {
                            self.at += 1;
                            return Ok(());
                        }
                        _ => return Err("expected , or a closing bracket"),
                    }
                }
            }
            b't' | b'f' | b'n' => {
                let lit: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if self.b[self.at..].starts_with(lit) {
                    self.at += lit.len();
                    Ok(())
                } else {
                    Err("an unexpected word")
                }
            }
            b'-' | b'0'..=b'9' => {
                while matches!(self.peek(), Some(b'+' | b'-' | b'0'..=b'9' | b'.' | b'e' | b'E')) {
                    self.at += 1;
                }
                Ok(())
            }
            _ => Err("an unexpected character"),
        }
    }
}

/// The `"text"` string of a JSON object; the reason when there is none.
pub fn read_text(body: &[u8]) -> Res<String> {
    let mut j = Json { b: body, at: 0 };
    let mut text = None;
    j.ws();
    if j.peek() != Some(b'{') {
        return Err("the body must be a JSON object");
    }
    j.at += 1;
    j.ws();
    if j.peek() == Some(b'}') {
        j.at += 1;
    } else {
        loop {
            let mut key = Vec::new();
            j.ws();
            j.string(&mut key)?;
            j.ws();
            if j.peek() != Some(b':') {
                return Err("expected : after a key");
            }
            j.at += 1;
            j.ws();
            if key == b"text" {
                if j.peek() != Some(b'"') {
                    return Err("\"text\" must be a string");
                }
                let mut t = Vec::new();
                j.string(&mut t)?;
                text = Some(t);
            } else {
                j.value(1)?;
            }
            j.ws();
            match j.peek() {
                Some(b',') => j.at += 1,
                Some(b'}') => {
                    j.at += 1;
                    break;
                }
                _ => return Err("expected , or } in the object"),
            }
        }
    }
    j.ws();
    if j.at != j.b.len() {
        return Err("text after the JSON object");
    }
    let text = text.ok_or("the object has no \"text\" string")?;
    // Raw bytes in a string were the body's own: keep them if they are UTF-8.
    String::from_utf8(text).map_err(|_| "a string that is not UTF-8")
}
