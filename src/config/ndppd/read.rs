//! Reading ndppd's configuration language the way ndppd 0.2's `conf::parse` does, quirks
//! included (one value per item, an optional `=`, quoted values, `#`, `//` and `/* */`
//! comments, a block that opens on the next line or after a quoted value is not the item's).
//!
//! Owns: [`read`] (text to [`Item`]s with their line numbers) and reading the values of
//! items as ndppd does (yes/no words, milliseconds, one item of a name, no block where none
//! belongs), refusing what is unclear.
//!
//! Must not: map anything to our schema (that is [`super`]).

/// One parsed item as ndppd sees it: `name [=] value [{ children }]` (one value at most).
#[derive(Debug)]
pub(super) struct Item {
    pub(super) name: String,
    pub(super) value: String,
    pub(super) children: Option<Vec<Item>>,
    pub(super) line: usize,
}

/// ndppd's `conf::parse_block` and `conf::parse`, over bytes, with line numbers.
struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
}

use std::time::Duration;

use crate::config::values::{self, DurationRange};

pub(super) type Refusal = (usize, String);

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn line_at(&self, pos: usize) -> usize {
        self.text[..pos.min(self.text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Spaces (newlines only if `newlines`) and comments: `#`, `//` (to the end of the line),
    /// `/* */`.
    fn skip(&mut self, newlines: bool) {
        loop {
            while let Some(b) = self.peek() {
                if b.is_ascii_whitespace() || b == 0x0b {
                    if b == b'\n' && !newlines {
                        break;
                    }
                    self.pos += 1;
                } else {
                    break;
                }
            }
            let rest = &self.text[self.pos..];
            if rest.starts_with(b"#") || rest.starts_with(b"//") {
                while self.peek().is_some_and(|b| b != b'\n') {
                    self.pos += 1;
                }
            } else if rest.starts_with(b"/*") {
                match rest.windows(2).position(|w| w == b"*/") {
                    Some(end) => self.pos += end + 2,
                    None => self.pos = self.text.len(),
                }
            } else {
                return;
            }
        }
    }

    fn text_of(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.text[from..self.pos]).into_owned()
    }

    /// The items up to the end of the file (`opened_at` None) or to the `}` closing the block
    /// opened at that line (consumed).
    fn block(&mut self, opened_at: Option<usize>) -> Result<Vec<Item>, Refusal> {
        let mut items = Vec::new();
        loop {
            self.skip(true);
            match (self.peek(), opened_at) {
                (None, None) => return Ok(items),
                (None, Some(line)) => {
                    return Err((
                        line,
                        "the '{' opened here is never closed: add the missing '}'".into(),
                    ))
                }
                (Some(b'}'), Some(_)) => {
                    self.pos += 1;
                    return Ok(items);
                }
                (Some(b'}'), None) => {
                    return Err((
                        self.line_at(self.pos),
                        "'}' without a matching '{' (ndppd stops reading the file here): remove it or add the '{'".into(),
                    ))
                }
                _ => {}
            }
            let start = self.pos;
            let line = self.line_at(start);
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                self.pos += 1;
            }
            let name = self.text_of(start);
            self.skip(false);
            if self.peek() == Some(b'=') {
                self.pos += 1;
                self.skip(false);
            }
            let value = self.value(line)?;
            self.skip(false);
            let children = if self.peek() == Some(b'{') {
                self.pos += 1;
                Some(self.block(Some(self.line_at(self.pos - 1)))?)
            } else {
                None
            };
            if self.pos == start {
                return Err((
                    line,
                    format!(
                        "unexpected character {:?} (ndppd cannot read past it): remove it",
                        String::from_utf8_lossy(&self.text[start..=start])
                    ),
                ));
            }
            items.push(Item {
                name,
                value,
                children,
                line,
            });
        }
    }

    /// A value: quoted (to the same quote or the end of the line) or a run of printable
    /// characters other than `{` and `}`.
    fn value(&mut self, line: usize) -> Result<String, Refusal> {
        let Some(quote @ (b'"' | b'\'')) = self.peek() else {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
            {
                self.pos += 1;
            }
            return Ok(self.text_of(start));
        };
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(|b| b != quote && b != b'\n') {
            self.pos += 1;
        }
        let value = self.text_of(start);
        if self.peek() == Some(quote) {
            // ndppd stays on the closing quote: it starts a new (quoted, nameless) value that
            // swallows the rest of the line, a '{' or '}' included. Harmless if nothing but
            // spaces or a comment follows.
            self.pos += 1;
            self.skip(false);
            if self.peek().is_some_and(|b| b != b'\n') {
                let q = quote as char;
                return Err((
                    line,
                    format!(
                        "ndppd reads the quoted value {q}{value}{q} and then takes the rest of this line as a value of its own, so what follows the closing quote (a '{{' included) is not what it seems: write {value} without quotes, check that ndppd still does what you expect, and import again"
                    ),
                ));
            }
        }
        Ok(value)
    }
}

pub(super) fn read(text: &str) -> Result<Vec<Item>, Refusal> {
    Reader {
        text: text.as_bytes(),
        pos: 0,
    }
    .block(None)
}

/// `yes`, `no`, `true`, `false` (any case). ndppd takes anything but yes and true as no:
/// other words are refused, since they may not mean what ndppd made of them.
pub(super) fn boolean(item: &Item) -> Result<bool, Refusal> {
    match item.value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        "" => Err((
            item.line,
            format!(
                "{} has no value, which ndppd reads as no: write {} yes or {} no",
                item.name, item.name, item.name
            ),
        )),
        other => Err((
            item.line,
            format!(
                "{} '{other}' is not yes, no, true or false (ndppd reads it as no): write {} yes or {} no",
                item.name, item.name, item.name
            ),
        )),
    }
}

/// A number of milliseconds within `range`, as a duration string for our file.
pub(super) fn millis(
    item: &Item,
    range: &DurationRange,
    key: &str,
) -> Result<(Duration, String), Refusal> {
    let example = range.example;
    if item.value.is_empty() {
        return Err((
            item.line,
            format!(
                "{} has no value, which ndppd reads as 0 ms: give the milliseconds, e.g. {} {}",
                item.name,
                item.name,
                ms_of(example)
            ),
        ));
    }
    let ms: u64 = item
        .value
        .parse()
        .ok()
        .filter(|_| item.value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            (
                item.line,
                format!(
                    "{} '{}' is not a whole number of milliseconds: write e.g. {} {}",
                    item.name,
                    item.value,
                    item.name,
                    ms_of(example)
                ),
            )
        })?;
    let d = Duration::from_millis(ms);
    if d < range.min || d > range.max {
        return Err((
            item.line,
            format!(
                "{} {ms} ms is outside what ndp-responder allows for {key} ({}): give {} to {} ms",
                item.name,
                range.what,
                range.min.as_millis(),
                range.max.as_millis()
            ),
        ));
    }
    let text = humantime::format_duration(d).to_string();
    // The same parser as the file's, so what is written is what is read back.
    values::parse_duration_in(&text, range).map_err(|e| (item.line, format!("{key}: {e}")))?;
    Ok((d, text))
}

/// "30s" → "30000" (for examples in messages).
pub(super) fn ms_of(example: &str) -> String {
    humantime::parse_duration(example)
        .map(|d| d.as_millis().to_string())
        .unwrap_or_else(|_| example.into())
}

/// Refuse a block where ndppd would ignore it (a nameless block: a '{' on a line of its own;
/// or the block of a setting that takes none).
pub(super) fn no_block(item: &Item) -> Result<(), Refusal> {
    match &item.children {
        None => Ok(()),
        Some(_) if item.name.is_empty() => Err((
            item.line,
            "a '{' block without a name: ndppd ignores everything in it (its '{' must be on the same line as the proxy or rule it belongs to): move the '{' up and import again".into(),
        )),
        Some(_) => Err((
            item.line,
            format!(
                "'{}' takes no '{{ }}' block here (ndppd ignores what is in it): remove the block, or move it where it belongs",
                item.name
            ),
        )),
    }
}

/// Each setting once: ndppd would use one of several and ignore the others.
pub(super) fn once<'a>(items: &'a [Item], name: &str) -> Result<Option<&'a Item>, Refusal> {
    let mut found = items.iter().filter(|i| i.name == name);
    let first = found.next();
    if let (Some(first), Some(again)) = (first, found.next()) {
        return Err((
            again.line,
            format!(
                "{name} is given again (first at line {}): ndppd uses only one of them; keep one",
                first.line
            ),
        ));
    }
    Ok(first)
}
