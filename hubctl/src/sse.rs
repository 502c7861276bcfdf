//! A Server-Sent Events parser (the WHATWG `text/event-stream` rules), fed with whatever chunks
//! the network delivers: lines may end in LF, CRLF or CR, and any of them may be split anywhere.

use std::time::Duration;

/// One dispatched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The last event id seen on the stream so far (ids persist across messages).
    pub id: Option<String>,
    /// The `event:` name, when set.
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk and returns the messages it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(m) = self.line_done(&line) {
                        out.push(m);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    /// The reconnection delay the server asked for with `retry:`.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    fn line_done(&mut self, raw: &[u8]) -> Option<Message> {
        if raw.is_empty() {
            return self.dispatch();
        }
        let line = String::from_utf8_lossy(raw);
        let line = line.strip_prefix('\u{feff}').unwrap_or(&line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse::<u64>().ok().map(Duration::from_millis);
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Message> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        Some(Message {
            id: self.last_id.clone(),
            event,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: Option<&str>, event: Option<&str>, data: &str) -> Message {
        Message {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn parses_the_hubs_frames() {
        let mut p = Parser::new();
        let out =
            p.feed(b"retry: 2000\n\nid: 7\nevent: progress\ndata: {\"seq\":7}\n\n: keepalive\n\n");
        assert_eq!(out, vec![msg(Some("7"), Some("progress"), "{\"seq\":7}")]);
        assert_eq!(p.retry(), Some(Duration::from_millis(2000)));
    }

    #[test]
    fn any_split_point_gives_the_same_messages() {
        let stream = b"id: 1\r\ndata: a\r\ndata: b\r\n\r\nid: 2\rdata:c\r\rdata: d\n\n";
        let whole = Parser::new().feed(stream);
        assert_eq!(
            whole,
            vec![
                msg(Some("1"), None, "a\nb"),
                msg(Some("2"), None, "c"),
                msg(Some("2"), None, "d")
            ]
        );
        for split in 0..stream.len() {
            let mut p = Parser::new();
            let mut out = p.feed(&stream[..split]);
            out.extend(p.feed(&stream[split..]));
            assert_eq!(out, whole, "split at {split}");
        }
        let mut p = Parser::new();
        let bytewise: Vec<Message> = stream.iter().flat_map(|b| p.feed(&[*b])).collect();
        assert_eq!(bytewise, whole);
    }

    #[test]
    fn ignores_comments_unknown_fields_and_empty_messages() {
        let mut p = Parser::new();
        let out = p.feed(b": hello\nfoo: bar\nevent: x\n\nretry: soon\ndata\n\n");
        assert_eq!(out, vec![msg(None, None, "")]);
        assert_eq!(p.retry(), None);
    }

    #[test]
    fn keeps_utf8_split_across_chunks() {
        let text = "data: é😀\n\n".as_bytes();
        let mut p = Parser::new();
        let mut out = p.feed(&text[..8]);
        out.extend(p.feed(&text[8..]));
        assert_eq!(out, vec![msg(None, None, "é😀")]);
    }

    #[test]
    fn an_unterminated_message_is_not_dispatched() {
        let mut p = Parser::new();
        assert!(p.feed(b"id: 3\ndata: partial").is_empty());
        assert_eq!(p.feed(b"\n\n"), vec![msg(Some("3"), None, "partial")]);
    }
}
