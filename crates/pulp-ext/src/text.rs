//! Guest text on its way into the host's logs.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Guest bytes as the text of one host log line. Invalid UTF-8 becomes U+FFFD, and
/// every character that could end the line or act on a terminal is escaped:
/// control characters (`\n`, `\r` and `\t` as such, the others, ESC among them, as
/// `\u{1b}`), the Unicode line and paragraph separators and the bidirectional
/// controls. So guest text can neither start a line of its own (and forge one of
/// the host's, or another plugin's) nor recolour, erase or reorder what an operator
/// reads, in either log format. Nothing else changes (a backslash stays one
/// backslash): the text stays readable, it is not meant to be decoded back.
///
/// ```
/// let forged = b"ok\n2026-01-01T00:00:00Z  INFO pulp: \x1b[31mred";
/// assert_eq!(
///     pulp_ext::log_text(forged),
///     r"ok\n2026-01-01T00:00:00Z  INFO pulp: \u{1b}[31mred"
/// );
/// ```
pub fn log_text(raw: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(raw);
    if !text.chars().any(escaped) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::log_text;

    #[test]
    fn line_breaks_and_terminal_controls_are_escaped() {
        assert_eq!(log_text(b"plain \\ text"), "plain \\ text");
        assert_eq!(log_text(b"a\r\n\tb"), r"a\r\n\tb");
        assert_eq!(log_text(b"\x00\x7f\xc2\x85"), r"\u{0}\u{7f}\u{85}");
        assert_eq!(
            log_text("x\u{2028}y\u{202e}z".as_bytes()),
            r"x\u{2028}y\u{202e}z"
        );
        assert_eq!(log_text(b"\xff"), "\u{fffd}");
    }
}
